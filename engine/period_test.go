package engine

import (
	"testing"
	"time"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCalendarPeriod(t *testing.T) {
	tests := []struct {
		interval, now, start, end string
	}{
		{"month", "2026-11-27T09:00:00Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"month", "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"", "2026-02-10T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
		{"day", "2026-11-27T23:59:59Z", "2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z"},
		{"week", "2026-11-27T09:00:00Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"}, // a Friday
		{"week", "2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"}, // Monday
		{"week", "2026-11-29T23:00:00Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"}, // Sunday
		{"year", "2026-11-27T09:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		// Other zones count in UTC.
		{"day", "2026-11-27T01:00:00+05:00", "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.interval+"@"+tc.now, func(t *testing.T) {
			start, end := CalendarPeriod(tc.interval, date(tc.now))
			if got, want := start, date(tc.start); !got.Equal(want) {
				t.Errorf("start = %v, want %v", got, want)
			}
			if got, want := end, date(tc.end); !got.Equal(want) {
				t.Errorf("end = %v, want %v", got, want)
			}
		})
	}
}

func TestCurrentPeriodSubscription(t *testing.T) {
	c := &Customer{PeriodStart: date("2026-11-15T12:00:00Z"), PeriodEnd: date("2026-12-15T12:00:00Z")}
	tests := []struct{ now, start, end string }{
		{"2026-11-20T00:00:00Z", "2026-11-15T12:00:00Z", "2026-12-15T12:00:00Z"},
		// No renewal reached us: carried forward from the same anchor.
		{"2026-12-20T00:00:00Z", "2026-12-15T12:00:00Z", "2027-01-15T12:00:00Z"},
		{"2027-03-01T00:00:00Z", "2027-02-15T12:00:00Z", "2027-03-15T12:00:00Z"},
		// Before the subscription started: calendar month.
		{"2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
	}
	for _, tc := range tests {
		start, end := CurrentPeriod(c, "month", date(tc.now))
		if !start.Equal(date(tc.start)) || !end.Equal(date(tc.end)) {
			t.Errorf("at %s: [%v, %v), want [%s, %s)", tc.now, start, end, tc.start, tc.end)
		}
	}
	// Without a subscription: calendar periods.
	start, _ := CurrentPeriod(&Customer{}, "day", date("2026-11-27T09:00:00Z"))
	if !start.Equal(date("2026-11-27T00:00:00Z")) {
		t.Errorf("no subscription: start %v", start)
	}
}
