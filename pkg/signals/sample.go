package signals

import (
	"github.com/claudecap/claudecap/pkg/capacity"
)

// BacklogSource says which Redis figure a backlog came from, so a status
// message can say when it is an upper bound rather than an exact count.
type BacklogSource string

const (
	// BacklogListLength is LLEN of the list: exact.
	BacklogListLength BacklogSource = "ListLength"
	// BacklogGroupLag is the consumer group's lag from XINFO GROUPS: exact.
	BacklogGroupLag BacklogSource = "GroupLag"
	// BacklogStreamLength is XLEN, used when Redis cannot tell the lag. It is
	// an upper bound: it also counts entries already delivered that nobody
	// trimmed yet, so demand errs high, never toward scaling in.
	BacklogStreamLength BacklogSource = "StreamLength"
)

// Sample is one poll of a queue: the capacity.QueueSample the arrival
// estimator and demand consume, plus where the backlog came from.
type Sample struct {
	capacity.QueueSample
	// BacklogSource says how Backlog was measured.
	BacklogSource BacklogSource
}

// listSample builds a list queue's sample. Lists keep no record of finished
// jobs, so Completed is unknown and the estimator counts only queue growth.
func listSample(backlog, inFlight int64) Sample {
	return Sample{
		QueueSample:   capacity.QueueSample{Backlog: backlog, InFlight: inFlight},
		BacklogSource: BacklogListLength,
	}
}

// streamSample builds a stream queue's sample from the group's XINFO entry,
// its pending count and the stream length.
//
// Completed is entries-read minus pending: every entry delivered to the group
// is either still pending or acknowledged. With backlog = lag = entries added
// minus entries read, backlog + in-flight + completed equals the stream's
// entries-added counter, so the estimator's arrivals are exactly the entries
// added between polls. The counter is only claimed when lag and entries-read
// are both known and consistent.
func streamSample(g groupInfo, pending, length int64) Sample {
	s := Sample{QueueSample: capacity.QueueSample{InFlight: pending}}
	if g.lagKnown {
		s.Backlog, s.BacklogSource = g.lag, BacklogGroupLag
	} else {
		s.Backlog, s.BacklogSource = length, BacklogStreamLength
	}
	if g.lagKnown && g.entriesReadKnown && g.entriesRead >= pending {
		s.Completed, s.CompletedKnown = g.entriesRead-pending, true
	}
	return s
}
