package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"
)

// Limits of POST /api/track/batch.
const (
	// MaxBatchEvents is the most events one batch takes.
	MaxBatchEvents = 1000
	// MaxEventKey is the longest idempotency key of an event.
	MaxEventKey = 255
)

// eventKeyPrefix puts the idempotency keys of batch events in a namespace
// of their own among a tenant's idempotency records: an Idempotency-Key
// header cannot hold a control character, and an event's key may not
// either, so the two never meet.
const eventKeyPrefix = "\x1fevent\x1f"

// BatchEvent is one event of POST /api/track/batch: a track call with an
// optional idempotency key of its own.
type BatchEvent struct {
	TrackInput
	// IdempotencyKey, when given (1 to MaxEventKey printable characters),
	// makes the event count once: an event whose key was used within
	// IdempotencyTTL answers the first answer and counts nothing.
	IdempotencyKey *string `json:"idempotencyKey"`
}

// Validate fills in defaults and reports every problem of e.
func (e *BatchEvent) Validate() error {
	var v Validation
	e.validate(&v)
	if k := e.IdempotencyKey; k != nil {
		switch {
		case *k == "":
			v.Add("idempotencyKey", "must not be empty: give 1 to %d characters, or leave it out", MaxEventKey)
		case len(*k) > MaxEventKey:
			v.Add("idempotencyKey", "must be at most %d characters", MaxEventKey)
		case !printable(*k):
			v.Add("idempotencyKey", "must not contain control characters")
		}
	}
	return v.Err()
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// hash identifies what a validated event asks for, so that a reuse of its
// key for another event is a conflict.
func (e *BatchEvent) hash() [32]byte {
	h := sha256.New()
	var q [8]byte
	binary.BigEndian.PutUint64(q[:], uint64(*e.Quantity))
	h.Write([]byte("track\x00" + e.CustomerID + "\x00" + e.Feature + "\x00"))
	h.Write(q[:])
	if string(e.Metadata) != "null" {
		h.Write(e.Metadata)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// BatchResult is the answer to one event of a batch: exactly one of its
// fields is set.
type BatchResult struct {
	// Result is a decision: allowed, or denied (what /api/track answers
	// with 429 tier_limit_reached).
	Result *TrackResult
	// Err is the event's own error, what /api/track would answer for it:
	// EVALIDATION, ENOTFOUND, EUNKNOWNFEATURE, ERATELIMITED, EPLUGINERROR,
	// EIDEMPOTENCYCONFLICT (its key was used for another event).
	Err error
	// Replay is the stored answer of an event whose key was used before
	// (in an earlier request, or earlier in this batch): Status and Body
	// as they were rendered the first time.
	Replay *IdemRecord
}

// EventRender renders a decided event as /api/track would answer it: the
// record an event's idempotency key replays. It is called under locks.
type EventRender func(r *TrackResult) (status int, body []byte)

// TrackBatch decides events exactly as if each were tracked alone
// (Track), one after the other in order — an event sees what the ones
// before it counted and the policy state they kept — and makes all of it
// durable in one unit of work (one commit) before it returns. The results
// are in the order of events.
//
// Each event counts once against the tier's per-minute rate limit; an
// event whose idempotency key was used before (replayed) counts nothing
// and takes no rate. idem is the request's own Idempotency-Key: a repeat
// of the request answers *Replayed (the whole first answer). render makes
// the records of events' keys; it may be nil when no event has one.
//
// The events are validated in place (their defaults filled in). Returns
// EVALIDATION (no events, or more than MaxBatchEvents), *Replayed or
// EIDEMPOTENCYCONFLICT for idem, and the store's errors, which count
// nothing; every other problem is an event's own (BatchResult.Err). Safe
// for concurrent use: batches and tracks of the same customers serialize
// on their counters' locks, taken by the store in one global order.
func (m *Meter) TrackBatch(ctx context.Context, t Tenant, events []BatchEvent, idem *Idempotency, render EventRender) ([]BatchResult, error) {
	if len(events) == 0 || len(events) > MaxBatchEvents {
		return nil, invalid("events", "must hold 1 to %d events", MaxBatchEvents)
	}
	c := m.c
	done, err := c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()

	b := &trackBatch{m: m, t: t, events: events, now: c.now(), render: render}
	b.results = make([]BatchResult, len(events))
	b.decided = make([]TrackResult, len(events))
	b.prepared = make([]preparedEvent, len(events))
	locks, err := b.prepare(ctx)
	if err != nil {
		return nil, err
	}
	if c.policies != nil {
		b.active = c.policies.Active(t)
	}
	res, err := c.updateClaimed(ctx, t, idem, locks, func(tx Tx) (any, error) {
		if err := b.decide(ctx, tx); err != nil {
			return nil, err
		}
		return b.results, nil
	})
	if err != nil {
		return nil, err
	}
	results := res.([]BatchResult)
	// Usage per day, as Track counts it: each decided event, once per
	// feature of the batch.
	type dayCount struct {
		feature       string
		count, denied int64
	}
	var days []dayCount
	for i := range results {
		r := results[i].Result
		if r == nil {
			continue
		}
		j := slices.IndexFunc(days, func(d dayCount) bool { return d.feature == r.Usage.Feature })
		if j < 0 {
			j = len(days)
			days = append(days, dayCount{feature: r.Usage.Feature})
		}
		if r.Allowed {
			days[j].count++
		} else {
			days[j].denied++
		}
	}
	for _, d := range days {
		c.days.addN(t, d.feature, b.now, d.count, d.denied)
	}
	return results, nil
}

// trackBatch is one TrackBatch call: its events as looked up before the
// unit of work, and what the unit decided so far.
type trackBatch struct {
	m        *Meter
	t        Tenant
	events   []BatchEvent
	now      time.Time
	render   EventRender
	active   *ActivePolicy
	prepared []preparedEvent
	results  []BatchResult
	decided  []TrackResult // the results' TrackResults, allocated at once

	// What the unit's earlier events wrote, which its reads would not see
	// (a unit's reads do not see its own writes): counters and policy
	// states by slot, the records of events' keys.
	counters map[counterSlot]*batchCounter
	states   map[stateSlot][]byte
	records  map[string]*IdemRecord
}

// preparedEvent is what an event looked up before the unit of work.
type preparedEvent struct {
	valid bool // validated: decided in the unit (else results holds its error)
	cus   *batchCustomer
	key   string
	hash  [32]byte
	// rated: the event's per-minute rate was taken (by the unit's first
	// run), with rateErr its outcome.
	rated   bool
	rateErr error
}

// batchCustomer is a customer of the batch as looked up once for all its
// events: its plan and current period (the batch has one clock), or the
// error of the lookup, which stands unless an event is a replay.
type batchCustomer struct {
	plan       trackPlan
	err        error
	start, end time.Time
	// features are those whose counter lock the unit takes.
	features []string
}

type counterSlot struct {
	customer, feature string
	start             int64
}

type stateSlot struct{ customer, feature string }

type batchCounter struct {
	key   CounterKey
	c     Counter
	dirty bool
}

// prepare validates the events and looks up their customers and tiers,
// and returns the locks of the unit: each counter an event may count on
// and each event key. A customer that does not exist is its events' error;
// a store that cannot tell fails the batch.
func (b *trackBatch) prepare(ctx context.Context) ([]Lock, error) {
	t := b.t
	var locks []Lock
	var keys map[string]bool
	customers := make(map[string]*batchCustomer) // by id: one lookup each
	for i := range b.events {
		e, p := &b.events[i], &b.prepared[i]
		if err := e.Validate(); err != nil {
			b.results[i].Err = err
			continue
		}
		p.valid = true
		if e.IdempotencyKey != nil {
			p.key = eventKeyPrefix + *e.IdempotencyKey
			p.hash = e.hash()
			if keys == nil {
				keys = make(map[string]bool)
			}
			if !keys[p.key] {
				keys[p.key] = true
				locks = append(locks, Lock{Kind: LockIdempotency, Mode: t.Mode, Platform: t.PlatformID, ID: p.key})
			}
		}
		bc := customers[e.CustomerID]
		if bc == nil {
			bc = new(batchCustomer)
			bc.plan, bc.err = b.m.lookup(ctx, t, e.CustomerID)
			if bc.err == nil {
				bc.start, bc.end = CurrentPeriod(bc.plan.cus, bc.plan.tier.Interval, b.now)
			} else if ErrorCode(bc.err) != ENOTFOUND {
				return nil, bc.err
			}
			customers[e.CustomerID] = bc
		}
		p.cus = bc
		if bc.err == nil && !slices.Contains(bc.features, e.Feature) {
			bc.features = append(bc.features, e.Feature)
			locks = append(locks, counterLock(t, bc.plan.cus.ID, e.Feature))
		}
	}
	return locks, nil
}

// decide decides every valid event in order, in the unit of work tx, and
// writes the counters and states they changed.
//
// decide may run more than once for one batch (a shared store runs a unit
// of work again when the database aborted its transaction): each run
// starts from what prepare left, and an event's per-minute rate is taken
// once, by its first run.
func (b *trackBatch) decide(ctx context.Context, tx Tx) error {
	b.counters, b.states, b.records = nil, nil, nil
	for i := range b.events {
		if !b.prepared[i].valid {
			continue
		}
		b.results[i], b.decided[i] = BatchResult{}, TrackResult{}
		if err := b.decideOne(ctx, tx, i); err != nil {
			return err
		}
	}
	for _, bc := range b.counters {
		if bc.dirty {
			tx.PutCounter(bc.key, bc.c)
		}
	}
	for s, state := range b.states {
		tx.PutPolicyState(b.t, s.customer, s.feature, state)
	}
	return nil
}

// decideOne decides event i as Track would, against the unit's reads and
// the batch's earlier events. It returns only the errors that fail the
// whole unit (the store's); the event's own go into its result.
func (b *trackBatch) decideOne(ctx context.Context, tx Tx, i int) error {
	c, t := b.m.c, b.t
	e, p, out := &b.events[i], &b.prepared[i], &b.results[i]
	if p.key != "" {
		// A replay answers before anything else is looked at, as in Track.
		rec, err := b.record(ctx, tx, p.key)
		if err != nil {
			return err
		}
		if rec != nil {
			if rec.RequestHash != p.hash {
				out.Err = Errorf(EIDEMPOTENCYCONFLICT, "idempotencyKey %q was already used with a different event.", *e.IdempotencyKey)
			} else {
				out.Replay = rec
			}
			return nil
		}
	}
	bcus := p.cus
	if bcus.err != nil {
		out.Err = bcus.err
		return nil
	}
	if !p.rated {
		p.rated, p.rateErr = true, b.m.takeRate(t, &bcus.plan, b.now)
	}
	if p.rateErr != nil {
		out.Err = p.rateErr
		return nil
	}
	limit, err := bcus.plan.limit(e.Feature)
	if err != nil {
		out.Err = err
		return nil
	}
	start, end := bcus.start, bcus.end
	cus, feature := bcus.plan.cus, e.Feature
	bc, err := b.counter(ctx, tx, CounterKey{Tenant: t, CustomerID: cus.ID, Feature: feature, PeriodStart: start})
	if err != nil {
		return err
	}
	pin := PolicyInput{
		Now: b.now, Used: bc.c.Count, Limit: limit, Quantity: *e.Quantity,
		PeriodStart: start, PeriodEnd: end, Mode: t.Mode,
		CustomerID: cus.ID, Plan: cus.Plan, Feature: feature, Metadata: e.Metadata,
	}
	slot := stateSlot{cus.ID, feature}
	if b.active != nil {
		if state, ok := b.states[slot]; ok {
			pin.State = state
		} else if b.active.mayHaveState() {
			if pin.State, err = tx.PolicyState(ctx, t, cus.ID, feature); err != nil {
				return err
			}
		}
	}
	var d Decision
	info, err := c.judge(ctx, t, b.active, &pin, &d)
	if err != nil {
		out.Err = err
		return nil
	}
	r := &b.decided[i]
	fillTrackResult(r, &pin, &d, info)
	if count := r.Usage.Count; d.Allowed && d.Cost > 0 {
		before := bc.c.Count
		bc.c, bc.dirty = Counter{Count: count, PeriodEnd: end}, true
		if reported := r.Usage.Limit; mayCross(before, count, reported) {
			if err := c.emitThresholds(ctx, tx, t, cus.ID, feature, before, count, reported, start, end); err != nil {
				return err
			}
		}
	}
	if keepsState(&d, info, false) {
		b.active.keptState()
		if b.states == nil {
			b.states = make(map[stateSlot][]byte)
		}
		// A copy: the policy's buffer may be reused by its next call.
		b.states[slot] = bytes.Clone(d.State)
	}
	out.Result = r
	if p.key != "" {
		status, body := b.render(r)
		rec := &IdemRecord{RequestHash: p.hash, Status: status, Body: body, CreatedAt: b.now.UTC()}
		if b.records == nil {
			b.records = make(map[string]*IdemRecord)
		}
		b.records[p.key] = rec
		tx.PutIdempotency(t, p.key, rec)
	}
	return nil
}

// record returns the live record of an event key: written earlier in the
// batch, or stored; nil when there is none.
func (b *trackBatch) record(ctx context.Context, tx Tx, key string) (*IdemRecord, error) {
	if rec := b.records[key]; rec != nil {
		return rec, nil
	}
	rec, err := tx.Idempotency(ctx, b.t, key)
	switch {
	case ErrorCode(err) == ENOTFOUND:
		return nil, nil
	case err != nil:
		return nil, err
	case b.now.Sub(rec.CreatedAt) >= IdempotencyTTL:
		return nil, nil // expired: the key is free again
	}
	return rec, nil
}

// counter returns the batch's view of a counter: what an earlier event of
// the batch made it, else what the store holds.
func (b *trackBatch) counter(ctx context.Context, tx Tx, k CounterKey) (*batchCounter, error) {
	slot := counterSlot{k.CustomerID, k.Feature, k.PeriodStart.UnixNano()}
	if bc := b.counters[slot]; bc != nil {
		return bc, nil
	}
	cnt, err := tx.Counter(ctx, k)
	if err != nil {
		return nil, err
	}
	if b.counters == nil {
		b.counters = make(map[counterSlot]*batchCounter)
	}
	bc := &batchCounter{key: k, c: cnt}
	b.counters[slot] = bc
	return bc, nil
}
