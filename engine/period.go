package engine

import "time"

// Intervals a tier may bill and count by.
const (
	IntervalDay   = "day"
	IntervalWeek  = "week"
	IntervalMonth = "month"
	IntervalYear  = "year"
)

// CalendarPeriod returns the UTC calendar period of interval that contains
// now: [start, end). An unknown interval counts as a month.
func CalendarPeriod(interval string, now time.Time) (start, end time.Time) {
	now = now.UTC()
	y, m, d := now.Date()
	switch interval {
	case IntervalDay:
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case IntervalWeek:
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		// ISO weeks start on Monday.
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7))
		return start, start.AddDate(0, 0, 7)
	case IntervalYear:
		start = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(1, 0, 0)
	default:
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
}

// CurrentPeriod returns the usage period of c at now. A customer with a
// subscription period uses it; when that period has ended without a renewal
// reaching us, it is carried forward by the tier's interval from the same
// anchor. Everyone else uses calendar periods.
func CurrentPeriod(c *Customer, interval string, now time.Time) (start, end time.Time) {
	if c.PeriodStart.IsZero() || !c.PeriodEnd.After(c.PeriodStart) {
		return CalendarPeriod(interval, now)
	}
	start, end = c.PeriodStart.UTC(), c.PeriodEnd.UTC()
	if now.Before(start) {
		return CalendarPeriod(interval, now)
	}
	for n := 1; !now.Before(end) && n < 10000; n++ {
		start = end
		end = addInterval(c.PeriodStart.UTC(), interval, n+1)
	}
	return start, end
}

func addInterval(t time.Time, interval string, n int) time.Time {
	switch interval {
	case IntervalDay:
		return t.AddDate(0, 0, n)
	case IntervalWeek:
		return t.AddDate(0, 0, 7*n)
	case IntervalYear:
		return t.AddDate(n, 0, 0)
	default:
		return t.AddDate(0, n, 0)
	}
}
