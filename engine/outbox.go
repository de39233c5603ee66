package engine

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// The outbox carries changes to the identity provider that must not be
// lost and must not hold up the change that causes them: a plan change
// writes an entry in its own batch, and a background worker (RunOutbox)
// delivers it with retries, across restarts, until the provider has it.

// Outbox entry kinds.
const (
	// OutboxSyncPlan sets the user's public metadata to the customer's
	// current plan (and publishable key). It is delivered from the customer
	// record as it is at delivery, so entries never carry a stale plan and
	// their order does not matter.
	OutboxSyncPlan = "clerk.sync_plan"
	// OutboxDeleteUser deletes the user.
	OutboxDeleteUser = "clerk.delete_user"
)

// OutboxEntry is one change waiting to be delivered to the identity
// provider.
type OutboxEntry struct {
	// ID is `obx_…`; ids sort by creation.
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	PlatformID string `json:"platformId"`
	Mode       Mode   `json:"mode"`
	// CustomerID is the customer's id, which is the provider's user id.
	CustomerID    string    `json:"customerId"`
	CreatedAt     time.Time `json:"createdAt"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
}

// Tenant is the world of the entry's customer.
func (e *OutboxEntry) Tenant() Tenant { return Tenant{PlatformID: e.PlatformID, Mode: e.Mode} }

// OutboxOptions tune RunOutbox. The zero value means the defaults.
type OutboxOptions struct {
	// MinBackoff is the wait after a failed delivery; it doubles with each
	// failure in a row, up to MaxBackoff. Defaults to 1 s and 5 min.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Poll is how often the outbox is read when nothing else wakes the
	// worker. Defaults to 30 s.
	Poll time.Duration
}

func (o *OutboxOptions) ensureDefaults() {
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.Poll <= 0 {
		o.Poll = 30 * time.Second
	}
}

// backoff is the wait after the n-th failure in a row (n ≥ 1), with up to
// 20 % of jitter so that retries of many servers do not line up.
func (o *OutboxOptions) backoff(n int) time.Duration {
	d := o.MinBackoff
	for i := 1; i < n && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// outbox is the worker's in-memory side: a wake-up signal and the entries
// being delivered right now (so that an inline delivery and the worker
// never deliver one entry at once).
type outbox struct {
	wakeCh chan struct{}
	mu     sync.Mutex
	busy   map[string]bool
	opts   OutboxOptions
}

func newOutbox() *outbox {
	o := &outbox{wakeCh: make(chan struct{}, 1), busy: make(map[string]bool)}
	o.opts.ensureDefaults()
	return o
}

// wake tells the worker there is something to deliver. Never blocks.
func (o *outbox) wake() {
	select {
	case o.wakeCh <- struct{}{}:
	default:
	}
}

// claim marks ids as being delivered; it returns false (claiming nothing)
// when one of them already is.
func (o *outbox) claim(ids ...string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		if o.busy[id] {
			return false
		}
	}
	for _, id := range ids {
		o.busy[id] = true
	}
	return true
}

func (o *outbox) options() OutboxOptions {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.opts
}

func (o *outbox) setOptions(opts OutboxOptions) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opts = opts
}

func (o *outbox) release(ids ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		delete(o.busy, id)
	}
}

// putOutbox adds an entry to b and returns it.
func (c *core) putOutbox(b Writer, kind string, t Tenant, customerID string) *OutboxEntry {
	now := c.now().UTC()
	e := &OutboxEntry{
		ID: NewID("obx_", now), Kind: kind, PlatformID: t.PlatformID, Mode: t.Mode,
		CustomerID: customerID, CreatedAt: now,
	}
	b.PutOutbox(e)
	return e
}

// syncedWithIdentity reports whether a customer is a user of the
// configured identity provider, whose changes go to the outbox. Local
// `cus_` customers (made while no provider was configured) are not.
func (c *core) syncedWithIdentity(cus *Customer) bool {
	return c.identity != nil && strings.HasPrefix(cus.ID, identityUserPrefix)
}

// identityPlanChanged queues the sync of cus's plan to its user, in the
// batch that changes it. Called from planChanged.
func (c *core) identityPlanChanged(b Writer, t Tenant, cus *Customer) {
	if !c.syncedWithIdentity(cus) {
		return
	}
	c.putOutbox(b, OutboxSyncPlan, t, cus.ID)
	// The worker waits a moment after a wake-up, by which time this batch
	// is applied; if not, the next poll finds the entry.
	c.outbox.wake()
}

// identityCustomerDeleted queues the deletion of cus's user in the batch
// that deletes cus, and returns the entry (nil when cus has no user).
func (c *core) identityCustomerDeleted(b Writer, t Tenant, cus *Customer) *OutboxEntry {
	if !c.syncedWithIdentity(cus) {
		return nil
	}
	return c.putOutbox(b, OutboxDeleteUser, t, cus.ID)
}

// outboxLease is how long a process holds the outbox entries it delivers
// on a shared store: longer than any delivery (deliverNowTimeout, the
// identity provider's client timeout).
const outboxLease = 2 * time.Minute

// leaseOutbox reports whether this process may deliver ids: always on a
// store of its own, and on a shared one (OutboxLeaser) when it got their
// lease. A failed lease is logged and reported false: the entries wait.
func (c *core) leaseOutbox(ctx context.Context, ids ...string) bool {
	l, ok := c.store.(OutboxLeaser)
	if !ok {
		return true
	}
	got, err := l.LeaseOutbox(ctx, ids, outboxLease)
	if err != nil {
		c.log.Warn("leasing outbox entries failed", "entry", ids[0], "err", err)
		return false
	}
	return got
}

// deliverNow tries to deliver e at once, for a caller that would like the
// change made before it answers; on failure the worker retries it.
func (c *core) deliverNow(ctx context.Context, e *OutboxEntry) {
	if !c.outbox.claim(e.ID) {
		return
	}
	defer c.outbox.release(e.ID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliverNowTimeout)
	defer cancel()
	if !c.leaseOutbox(ctx, e.ID) {
		return // another process delivers it
	}
	if err := c.settle(ctx, []*OutboxEntry{e}, c.deliver(ctx, e)); err != nil {
		c.outbox.wake()
	}
}

// deliver makes one entry's change at the identity provider.
func (c *core) deliver(ctx context.Context, e *OutboxEntry) error {
	switch e.Kind {
	case OutboxSyncPlan:
		cus, err := c.store.Customer(ctx, e.Tenant(), e.CustomerID)
		if ErrorCode(err) == ENOTFOUND {
			return nil // deleted since: its user goes with it
		} else if err != nil {
			return err
		}
		return c.identity.UpdateMetadata(ctx, cus.ID, map[string]any{
			MetadataPlan: cus.Plan, MetadataPublishableKey: cus.PublishableKey,
		})
	case OutboxDeleteUser:
		return c.identity.DeleteUser(ctx, e.CustomerID)
	}
	c.log.Error("outbox entry of unknown kind dropped", "entry", e.ID, "kind", e.Kind)
	return nil
}

// settle records the outcome of delivering entries (one change, which they
// all asked for): done (no error, or the user is gone), refused for good
// (EVALIDATION: logged and dropped), or to be retried with backoff. It
// returns err when the entries stay for a retry, else nil.
func (c *core) settle(ctx context.Context, entries []*OutboxEntry, err error) error {
	b := c.store.NewBatch()
	defer b.Close()
	code := ErrorCode(err)
	switch {
	case err == nil || code == ENOTFOUND:
		for _, e := range entries {
			b.DeleteOutbox(e.ID)
		}
	case code == EVALIDATION:
		c.log.Error("Clerk refused an outbox change; dropped", "entry", entries[0].ID, "kind", entries[0].Kind,
			"user", entries[0].CustomerID, "err", err)
		for _, e := range entries {
			b.DeleteOutbox(e.ID)
		}
	default:
		now, opts := c.now().UTC(), c.outbox.options()
		for _, e := range entries {
			e.Attempts++
			e.NextAttemptAt = now.Add(opts.backoff(e.Attempts))
			e.LastError = err.Error()
			b.PutOutbox(e)
		}
	}
	if cerr := b.Commit(); cerr != nil {
		c.log.Error("recording an outbox delivery failed", "entry", entries[0].ID, "err", cerr)
		if err == nil {
			return cerr
		}
	}
	if err != nil && code != ENOTFOUND && code != EVALIDATION {
		return err
	}
	return nil
}

// DeliverOutbox makes one pass over the outbox: every entry that is due is
// delivered, oldest first, until a delivery fails. Entries about the same
// change of the same customer are delivered once. It returns how many
// entries were settled, when the next entry waiting for a retry is due
// (zero when none), and the error of the delivery that failed. Without an
// Identity it does nothing.
func (e *Engine) DeliverOutbox(ctx context.Context) (settled int, next time.Time, err error) {
	c := e.Customers.c
	if c.identity == nil {
		return 0, time.Time{}, nil
	}
	p := Page{Limit: 100}
	for {
		entries, more, err := c.store.Outbox(ctx, p)
		if err != nil {
			return settled, next, err
		}
		// Every listed entry's batch is applied, so one delivery reading
		// the customer as it is now covers all of a customer's entries.
		now := c.now()
		type group struct{ entries []*OutboxEntry }
		var order []string
		groups := map[string]*group{}
		for _, en := range entries {
			if en.NextAttemptAt.After(now) {
				if next.IsZero() || en.NextAttemptAt.Before(next) {
					next = en.NextAttemptAt
				}
				continue
			}
			k := en.Kind + "\x00" + en.PlatformID + "\x00" + en.Mode.String() + "\x00" + en.CustomerID
			g := groups[k]
			if g == nil {
				g = &group{}
				groups[k] = g
				order = append(order, k)
			}
			g.entries = append(g.entries, en)
		}
		for _, k := range order {
			g := groups[k]
			ids := make([]string, len(g.entries))
			for i, en := range g.entries {
				ids[i] = en.ID
			}
			if !c.outbox.claim(ids...) {
				continue
			}
			if !c.leaseOutbox(ctx, ids...) {
				c.outbox.release(ids...)
				continue // another process delivers them
			}
			derr := c.settle(ctx, g.entries, c.deliver(ctx, g.entries[0]))
			c.outbox.release(ids...)
			if derr != nil {
				return settled, next, derr
			}
			settled += len(g.entries)
		}
		if !more || len(entries) == 0 {
			return settled, next, nil
		}
		p.StartingAfter = entries[len(entries)-1].ID
	}
}

// RunOutbox delivers the outbox until ctx is done: at once when a change
// is queued, after a backoff when a delivery failed, and every o.Poll
// otherwise. Without an Identity it returns at once. Call it once per
// engine.
func (e *Engine) RunOutbox(ctx context.Context, o OutboxOptions) {
	c := e.Customers.c
	if c.identity == nil {
		return
	}
	o.ensureDefaults()
	c.outbox.setOptions(o)

	timer := time.NewTimer(o.Poll)
	defer timer.Stop()
	fails := 0
	for {
		n, next, err := e.DeliverOutbox(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := o.Poll
		if err != nil {
			fails++
			wait = o.backoff(fails)
			c.log.Warn("delivering to Clerk failed; will retry", "err", err, "retryIn", wait.Round(time.Millisecond).String())
		} else {
			if fails > 0 || n > 0 {
				c.log.Info("delivered outbox entries to Clerk", "count", n)
			}
			fails = 0
			if !next.IsZero() {
				wait = min(wait, max(next.Sub(c.now()), 10*time.Millisecond))
			}
		}
		timer.Reset(wait)
	waiting:
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
				break waiting
			case <-c.outbox.wakeCh:
				if fails > 0 {
					continue // backing off: a new change waits its turn
				}
				// Let the batch that woke us be applied, and let a burst
				// of changes gather.
				// (Since Go 1.23, Reset discards a pending tick.)
				timer.Reset(25 * time.Millisecond)
			}
		}
	}
}
