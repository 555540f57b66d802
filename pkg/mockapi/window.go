package mockapi

// windowSlots is two minutes of one-second slots: the current sliding minute
// and the one before it (the acceleration rule compares the two).
const windowSlots = 120

// minuteWindow sums a quantity over sliding 60-second windows made of
// one-second slots. It keeps the sum of the current minute (the 60 slots
// ending at the newest second), the sum of the minute before it, and the
// highest current-minute sum ever seen, which is what /mock/stats reports as
// peak per-minute usage. Because slots are whole seconds, the window covers
// the 60 whole seconds ending with the current one.
type minuteWindow struct {
	slots [windowSlots]int64
	head  int64 // unix second of the newest slot; 0 before the first add
	cur   int64 // sum of slots head-59 .. head
	prev  int64 // sum of slots head-119 .. head-60
	peak  int64
}

// advance moves the window so sec is the newest slot. Seconds older than the
// head (a late record, or a clock that went back) stay in the head slot.
func (w *minuteWindow) advance(sec int64) {
	if sec <= w.head {
		return
	}
	if sec-w.head >= windowSlots || w.head == 0 {
		w.slots = [windowSlots]int64{}
		w.cur, w.prev = 0, 0
		w.head = sec
		return
	}
	for s := w.head + 1; s <= sec; s++ {
		leavingCur := w.slots[(s-60)%windowSlots] // moves from cur to prev
		leavingPrev := w.slots[s%windowSlots]     // second s-120 drops out
		w.cur -= leavingCur
		w.prev += leavingCur - leavingPrev
		w.slots[s%windowSlots] = 0
	}
	w.head = sec
}

// add records v at second sec.
func (w *minuteWindow) add(sec, v int64) {
	w.advance(sec)
	w.slots[w.head%windowSlots] += v
	w.cur += v
	if w.cur > w.peak {
		w.peak = w.cur
	}
}

// minutes returns the current and previous minute sums as of sec.
func (w *minuteWindow) minutes(sec int64) (cur, prev int64) {
	w.advance(sec)
	return w.cur, w.prev
}
