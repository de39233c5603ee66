package engine

import (
	"sync"
	"time"
)

// Sign-in throttling: failures are counted per account (tenant and email,
// known or not) and per client address, in memory. After a few free
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

// wait returns how long a sign-in of acct from ip must still wait; 0 when
// it may go ahead.
func (t *throttle) wait(now time.Time, acct, ip string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var w time.Duration
	for _, k := range []struct {
		key  string
		free int
	}{{acct, throttleFreeAccount}, {"ip\x00" + ip, throttleFreeAddress}} {
		f := t.m[k.key]
		if f == nil {
			continue
		}
		if left := f.last.Add(delay(f, k.free)).Sub(now); left > w {
			w = left
		}
	}
	return w
}

// fail counts a failed sign-in of acct from ip.
func (t *throttle) fail(now time.Time, acct, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range []string{acct, "ip\x00" + ip} {
		f := t.m[k]
		if f == nil || now.Sub(f.last) > throttleForget {
			f = &failures{}
			t.m[k] = f
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
}

// success clears acct's failures.
func (t *throttle) success(acct string) {
	t.mu.Lock()
	delete(t.m, acct)
	t.mu.Unlock()
}
