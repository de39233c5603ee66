package engine

import (
	"sync"
	"time"
)

// Sign-in throttling: failures are counted per account (tenant and email,
// known or not) and per client address, in memory; every attempt counts as
// a failure until it succeeds. After a few free
// failures each further attempt must wait a delay that doubles with every
// failure, measured on the engine's clock from the last failure. A
// success clears the account's count; an address's count fades after
// throttleForget of quiet. Counts start over when the server restarts.
const (
	throttleFreeAccount = 5
	throttleFreeAddress = 20
	throttleBase        = time.Second
	throttleMax         = 15 * time.Minute
	throttleForget      = time.Hour
)

type failures struct {
	n    int
	last time.Time
}

type throttle struct {
	mu      sync.Mutex
	m       map[string]*failures
	touched int
}

func newThrottle() *throttle { return &throttle{m: map[string]*failures{}} }

// delay is how long after its last failure a key with f failures (free
// of them without delay) must wait.
func delay(f *failures, free int) time.Duration {
	if f == nil || f.n < free {
		return 0
	}
	d := throttleBase << min(f.n-free, 20)
	return min(d, throttleMax)
}

// attempt counts a sign-in of acct from ip as a failure before it is
// checked, so that a burst of parallel guesses is throttled like a series
// of them, and returns 0; or, while acct or ip must still wait, returns
// how long and counts nothing.
func (t *throttle) attempt(now time.Time, acct, ip string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := [2]struct {
		key  string
		free int
	}{{acct, throttleFreeAccount}, {"ip\x00" + ip, throttleFreeAddress}}
	var w time.Duration
	for _, k := range keys {
		if f := t.m[k.key]; f != nil && now.Sub(f.last) <= throttleForget {
			w = max(w, f.last.Add(delay(f, k.free)).Sub(now))
		}
	}
	if w > 0 {
		return w
	}
	for _, k := range keys {
		f := t.m[k.key]
		if f == nil || now.Sub(f.last) > throttleForget {
			f = &failures{}
			t.m[k.key] = f
		}
		f.n++
		f.last = now
	}
	if t.touched++; t.touched >= 1024 {
		t.touched = 0
		for k, f := range t.m {
			if now.Sub(f.last) > throttleForget {
				delete(t.m, k)
			}
		}
	}
	return 0
}

// success takes back what attempt counted for a sign-in that succeeded:
// acct's failures are cleared, ip's count goes down by one.
func (t *throttle) success(acct, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, acct)
	if f := t.m["ip\x00"+ip]; f != nil && f.n > 0 {
		f.n--
	}
}
