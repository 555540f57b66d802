package dimension

import (
	"strconv"
	"strings"
)

// FormatCount writes n with thousands separators: 81000 is "81,000".
func FormatCount(n int64) string {
	return GroupThousands(strconv.FormatInt(n, 10))
}

// GroupThousands puts commas into the integer part of a plain decimal number:
// "-1234567.5" is "-1,234,567.5". It is the one thousands formatter of claudecap's messages
// and tables.
func GroupThousands(text string) string {
	sign := ""
	if strings.HasPrefix(text, "-") {
		sign, text = "-", text[1:]
	}
	whole, frac, hasFrac := strings.Cut(text, ".")
	var b strings.Builder
	b.Grow(len(sign) + len(text) + len(whole)/3)
	b.WriteString(sign)
	for i, digit := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(digit)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
