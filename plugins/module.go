package plugins

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Module is a validated policy module, loaded by Runtime.Load. It implements
// engine.Policy.
//
// A Module is safe for concurrent use: each call runs on an instance of its
// own, taken from a pool of at most Options.PoolSize instances (created
// lazily; callers wait while all are busy). The caller MUST call Close.
type Module struct {
	rt     *Runtime
	c      *compiled
	size   int
	sum    string // hex
	outCap uint32

	idle  chan *instance // instances ready for a call
	slots chan struct{}  // one token per existing instance, ≤ PoolSize

	refs    atomic.Int64 // 1 (the owner) + calls in flight
	closing atomic.Bool

	live, peak atomic.Int32 // instances alive, and the most at once (tests)

	logMu      sync.Mutex
	logSec     int64
	logN       int
	logDropped int
}

func newModule(r *Runtime, c *compiled, size int) *Module {
	m := &Module{
		rt:     r,
		c:      c,
		size:   size,
		sum:    hex.EncodeToString(c.sum[:]),
		outCap: uint32(outputHeaderSize + r.opts.MaxMessage + r.opts.MaxState),
		idle:   make(chan *instance, r.opts.PoolSize),
		slots:  make(chan struct{}, r.opts.PoolSize),
	}
	m.refs.Store(1)
	return m
}

// SHA256 returns the hex SHA-256 of the module's wasm bytes.
func (m *Module) SHA256() string { return m.sum }

// Size returns the size of the module's wasm bytes.
func (m *Module) Size() int { return m.size }

// Decide implements engine.Policy: it runs decide_v1 on in and fills out.
//
// It returns a *PluginError when the plugin failed (out must then be
// ignored), ErrInputTooLarge when in exceeds Options.MaxInput, ErrClosed
// after Close, or the context's error when ctx is done before the call
// starts or its deadline, when earlier than Options.Deadline, cuts the call
// short. Once running, a call is bounded by the deadline, not by the
// cancellation of ctx.
//
// out.State is reused: the new state is appended to out.State[:0].
func (m *Module) Decide(ctx context.Context, in *engine.PolicyInput, out *engine.Decision) error {
	if !m.acquire() {
		return ErrClosed
	}
	defer m.releaseRef()
	inst, err := m.get(ctx, in)
	if err != nil {
		return err
	}
	err = inst.decide(ctx, in, out)
	m.put(inst)
	return err
}

// DryRun is Decide that also returns the plugin log lines of the call
// (dream.log, stdout and stderr, at most 100 lines of at most 1 KiB) and its
// duration. Nothing is logged to Options.Logger.
func (m *Module) DryRun(ctx context.Context, in *engine.PolicyInput, out *engine.Decision) (log []string, dur time.Duration, err error) {
	if !m.acquire() {
		return nil, 0, ErrClosed
	}
	defer m.releaseRef()
	inst, err := m.get(ctx, in)
	if err != nil {
		return nil, 0, err
	}
	log = []string{}
	inst.capture = &log
	start := time.Now()
	err = inst.decide(ctx, in, out) // flushes a partial line into log
	dur = time.Since(start)
	inst.capture = nil
	m.put(inst)
	return log, dur, err
}

// Close releases the module: at once when no call is in flight, else when
// the last one finishes. Calls after Close return ErrClosed. The compiled
// code is released with the last Module loaded from the same bytes.
func (m *Module) Close(ctx context.Context) error {
	if m.closing.Swap(true) {
		return nil
	}
	m.releaseRef()
	return nil
}

var _ engine.Policy = (*Module)(nil)

func (m *Module) acquire() bool {
	for {
		if m.closing.Load() || m.rt.closed.Load() {
			return false
		}
		r := m.refs.Load()
		if r <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (m *Module) releaseRef() {
	if m.refs.Add(-1) == 0 {
		m.free()
	}
}

// free closes the idle instances and releases the compiled module. No call
// is in flight, so every instance is idle.
func (m *Module) free() {
	for {
		select {
		case inst := <-m.idle:
			inst.close()
		default:
			m.rt.release(m.c)
			return
		}
	}
}

// get takes an instance whose buffer fits in, creating one when the pool is
// not full, else waiting for one.
func (m *Module) get(ctx context.Context, in *engine.PolicyInput) (*instance, error) {
	need := headerSize + len(in.CustomerID) + len(in.Plan) + len(in.Feature) + len(in.Metadata) + len(in.State)
	if need > m.rt.opts.MaxInput {
		return nil, fmt.Errorf("%w: %d bytes; the limit is %d", ErrInputTooLarge, need, m.rt.opts.MaxInput)
	}
	var inst *instance
	select {
	case inst = <-m.idle:
	default:
		select {
		case inst = <-m.idle:
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if inst != nil && need <= int(inst.inCap) {
		return inst, nil
	}
	// A new instance in this slot: the pool was not full, or the input does
	// not fit the buffer of the one taken (alloc is called once per
	// instance, so a bigger buffer takes a fresh instance).
	if inst != nil {
		inst.close()
	}
	inst, err := m.newInstance(ctx, m.bufferSize(need))
	if err != nil {
		<-m.slots
		return nil, err
	}
	return inst, nil
}

// put returns inst to the pool, or closes it when it failed.
func (m *Module) put(inst *instance) {
	if inst.dead {
		inst.close()
		<-m.slots
		return
	}
	m.idle <- inst // never blocks: at most PoolSize instances exist
}

// bufferSize is the input buffer of a new instance for an input of need
// bytes: at least initialInput, else the next power of two, within MaxInput.
func (m *Module) bufferSize(need int) uint32 {
	size := initialInput
	for size < need {
		size *= 2
	}
	return uint32(min(size, m.rt.opts.MaxInput)) // ≥ need, as need ≤ MaxInput
}

// selfTest runs the Load-time call on a first instance.
func (m *Module) selfTest(ctx context.Context) error {
	in := selfTestInput()
	inst, err := m.get(ctx, in)
	if err != nil {
		return asValidation(err, "")
	}
	var out engine.Decision
	err = inst.decide(ctx, in, &out)
	m.put(inst)
	return asValidation(err, "self-test call: ")
}

func asValidation(err error, prefix string) error {
	var pe *PluginError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return invalidf("%s%s", prefix, pe.Reason)
	case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return invalidf("%s%v", prefix, err)
}

// log writes one plugin log line to the Logger, within LogLinesPerSecond.
func (m *Module) log(line []byte) {
	sec := time.Now().Unix()
	m.logMu.Lock()
	dropped := 0
	if sec != m.logSec {
		dropped = m.logDropped
		m.logSec, m.logN, m.logDropped = sec, 0, 0
	}
	ok := m.logN < m.rt.opts.LogLinesPerSecond
	if ok {
		m.logN++
	} else {
		m.logDropped++
	}
	m.logMu.Unlock()
	short := m.sum[:12]
	if dropped > 0 {
		m.rt.logger.Warn("plugin log lines dropped", "module", short, "dropped", dropped)
	}
	if ok {
		m.rt.logger.Info("plugin log", "module", short, "line", string(line))
	}
}
