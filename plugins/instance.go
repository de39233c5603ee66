package plugins

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/dream-api/dream-api/engine"
)

// The limitpolicy v1 layout (docs/plugin-abi.md).
const (
	abiVersion       = 1
	headerSize       = 104
	outputHeaderSize = 32
	pageSize         = 65536

	flagCheckOnly       = 1 << 0
	outFlagReplaceState = 1 << 0
	outFlagLimitSet     = 1 << 1

	// initialInput is the input buffer of a new instance: enough for ids,
	// a small metadata object and the largest state.
	initialInput = 8 << 10

	maxLogLine      = 1024 // bytes; longer lines are cut
	maxCapturedLogs = 100  // lines per DryRun
)

var le = binary.LittleEndian

// instance is one instantiation of a Module, used by one call at a time.
type instance struct {
	m     *Module
	mod   api.Module
	mem   api.Memory
	fn    api.Function // decide_v1
	ptr   uint32       // the alloc'd buffer: input, then output
	inCap uint32
	// outCap is the output buffer, 32 + MaxMessage + MaxState.
	outCap uint32

	stack   [4]uint64 // params and result of decide_v1
	cc      callContext
	timer   *time.Timer // fires cc at the deadline
	dead    bool        // failed or overran: close, never reuse
	lastMsg string      // the previous message, reused when equal

	capture *[]string // DryRun's log lines, else nil
	logw    logWriter // stdout and stderr of the guest
}

// newInstance instantiates m with an input buffer of inCap bytes.
func (m *Module) newInstance(ctx context.Context, inCap uint32) (*instance, error) {
	inst := &instance{m: m, inCap: inCap, outCap: m.outCap}
	inst.cc.inst = inst
	inst.cc.done = make(chan struct{})
	inst.timer = time.AfterFunc(time.Hour, inst.cc.fire)
	inst.timer.Stop()
	inst.logw.inst = inst

	deadline := m.rt.opts.InitDeadline
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadline)
	defer cancel()
	ictx = context.WithValue(ictx, instanceKey{}, inst)
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStdout(&inst.logw).
		WithStderr(&inst.logw)
	mod, err := m.rt.wr.InstantiateModule(ictx, m.c.cm, cfg)
	if err != nil {
		if m.rt.closed.Load() {
			return nil, ErrClosed
		}
		return nil, &PluginError{Reason: "instantiate: " + describe(err, "_initialize", deadline), Err: err}
	}
	inst.mod = mod
	inst.mem = mod.ExportedMemory("memory")
	inst.fn = mod.ExportedFunction("decide_v1")
	total := inCap + inst.outCap
	res, err := mod.ExportedFunction("alloc").Call(ictx, uint64(total))
	if err != nil {
		_ = mod.Close(ctx)
		return nil, &PluginError{Reason: "instantiate: " + describe(err, "alloc", deadline), Err: err}
	}
	inst.ptr = api.DecodeU32(res[0])
	if _, ok := inst.mem.Read(inst.ptr, total); !ok {
		_ = mod.Close(ctx)
		return nil, &PluginError{Reason: fmt.Sprintf("instantiate: alloc(%d) returned %d, out of bounds of memory", total, inst.ptr)}
	}
	if n := m.live.Add(1); n > m.peak.Load() {
		m.peak.Store(n) // approximate under races; for tests
	}
	return inst, nil
}

func (inst *instance) close() {
	inst.timer.Stop()
	_ = inst.mod.Close(context.Background())
	inst.m.live.Add(-1)
}

// decide runs one call. On any error it marks inst dead.
func (inst *instance) decide(ctx context.Context, in *engine.PolicyInput, out *engine.Decision) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf, ok := inst.mem.Read(inst.ptr, inst.inCap)
	if !ok {
		inst.dead = true
		return &PluginError{Reason: "the alloc'd buffer is out of bounds of memory"}
	}
	n := encodeInput(buf, in)

	now := time.Now()
	limit, own := inst.m.rt.opts.Deadline, true
	if d, ok := ctx.Deadline(); ok {
		if rem := d.Sub(now); rem < limit {
			limit, own = rem, false
		}
	}
	if limit <= 0 {
		return context.DeadlineExceeded
	}
	inst.cc.parent = ctx
	inst.cc.deadline = now.Add(limit)
	inst.stack = [4]uint64{uint64(inst.ptr), uint64(n), uint64(inst.ptr + inst.inCap), uint64(inst.outCap)}
	inst.timer.Reset(limit)
	err := inst.fn.CallWithStack(&inst.cc, inst.stack[:])
	fired := !inst.timer.Stop()
	inst.cc.parent = nil
	inst.logw.flush() // a partial line ends with the call
	if fired {
		inst.dead = true // its context is done for good
	}
	if err != nil {
		inst.dead = true
		if fired && !own {
			return fmt.Errorf("plugins: decide_v1 cut short: %w", context.DeadlineExceeded)
		}
		return &PluginError{Reason: describe(err, "decide_v1", limit), Err: err}
	}
	if err := inst.readOutput(int32(api.DecodeU32(inst.stack[0])), in, out); err != nil {
		inst.dead = true
		return err
	}
	return nil
}

// encodeInput writes in to b in the v1 layout and returns its length. b is
// large enough (Module.get).
func encodeInput(b []byte, in *engine.PolicyInput) int {
	_ = b[headerSize-1]
	le.PutUint32(b[0:], abiVersion)
	le.PutUint32(b[4:], headerSize)
	le.PutUint64(b[8:], uint64(unixMillis(in.Now)))
	le.PutUint64(b[16:], uint64(in.Used))
	le.PutUint64(b[24:], uint64(in.Limit))
	le.PutUint64(b[32:], uint64(in.Quantity))
	le.PutUint64(b[40:], uint64(unixMillis(in.PeriodStart)))
	le.PutUint64(b[48:], uint64(unixMillis(in.PeriodEnd)))
	le.PutUint32(b[56:], uint32(in.Mode))
	var flags uint32
	if in.CheckOnly {
		flags |= flagCheckOnly
	}
	le.PutUint32(b[60:], flags)
	off := headerSize
	off = putString(b, 64, off, in.CustomerID)
	off = putString(b, 72, off, in.Plan)
	off = putString(b, 80, off, in.Feature)
	off = putBytes(b, 88, off, in.Metadata)
	off = putBytes(b, 96, off, in.State)
	return off
}

func putString(b []byte, at, off int, s string) int {
	le.PutUint32(b[at:], uint32(off))
	le.PutUint32(b[at+4:], uint32(len(s)))
	return off + copy(b[off:], s)
}

func putBytes(b []byte, at, off int, s []byte) int {
	le.PutUint32(b[at:], uint32(off))
	le.PutUint32(b[at+4:], uint32(len(s)))
	return off + copy(b[off:], s)
}

func unixMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// readOutput checks and decodes the r bytes decide_v1 wrote.
func (inst *instance) readOutput(r int32, in *engine.PolicyInput, out *engine.Decision) error {
	if r < 0 {
		return &PluginError{Reason: fmt.Sprintf("decide_v1 returned %d", r)}
	}
	if r < outputHeaderSize || uint32(r) > inst.outCap {
		return &PluginError{Reason: fmt.Sprintf("decide_v1 returned %d; want %d..%d bytes", r, outputHeaderSize, inst.outCap)}
	}
	// Read the memory again: the call may have grown (and moved) it.
	b, ok := inst.mem.Read(inst.ptr+inst.inCap, uint32(r))
	if !ok {
		return &PluginError{Reason: "the output buffer is out of bounds of memory"}
	}
	decision, flags := le.Uint32(b[0:]), le.Uint32(b[4:])
	cost, limit := int64(le.Uint64(b[8:])), int64(le.Uint64(b[16:]))
	msgLen, stateLen := le.Uint32(b[24:]), le.Uint32(b[28:])
	opts := &inst.m.rt.opts
	switch {
	case decision > 1:
		return &PluginError{Reason: fmt.Sprintf("invalid decision %d; want 0 or 1", decision)}
	case flags&^(outFlagReplaceState|outFlagLimitSet) != 0:
		return &PluginError{Reason: fmt.Sprintf("unknown output flags %#x", flags)}
	case cost < 0:
		return &PluginError{Reason: fmt.Sprintf("negative cost %d", cost)}
	case flags&outFlagLimitSet != 0 && limit < -1:
		return &PluginError{Reason: fmt.Sprintf("invalid limit %d", limit)}
	case msgLen > uint32(opts.MaxMessage):
		return &PluginError{Reason: fmt.Sprintf("message of %d bytes; the limit is %d", msgLen, opts.MaxMessage)}
	case stateLen > uint32(opts.MaxState):
		return &PluginError{Reason: fmt.Sprintf("state of %d bytes; the limit is %d", stateLen, opts.MaxState)}
	case outputHeaderSize+msgLen+stateLen != uint32(r):
		return &PluginError{Reason: fmt.Sprintf("decide_v1 returned %d but wrote 32 + %d + %d bytes", r, msgLen, stateLen)}
	}
	var msg string
	if msgLen > 0 {
		mb := b[outputHeaderSize : outputHeaderSize+msgLen]
		if !utf8.Valid(mb) {
			return &PluginError{Reason: "message is not valid UTF-8"}
		}
		if string(mb) != inst.lastMsg { // no allocation to compare
			inst.lastMsg = string(mb)
		}
		msg = inst.lastMsg
	}
	state := out.State[:0]
	replace := flags&outFlagReplaceState != 0
	if replace {
		state = append(state, b[outputHeaderSize+msgLen:]...)
	}
	*out = engine.Decision{
		Allowed:      decision == 1,
		Cost:         cost,
		Limit:        in.Limit,
		Message:      msg,
		State:        state,
		ReplaceState: replace,
	}
	if flags&outFlagLimitSet != 0 {
		out.Limit, out.LimitSet = limit, true
	}
	return nil
}

// describe says why a call of fn failed, in one line.
func describe(err error, fn string, deadline time.Duration) string {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Sprintf("%s exceeded its deadline of %v", fn, deadline)
		case sys.ExitCodeContextCanceled:
			return fn + " was canceled"
		}
		return fmt.Sprintf("%s exited with code %d", fn, exit.ExitCode())
	}
	msg, _, _ := strings.Cut(err.Error(), "\n") // drop the wasm stack trace
	return fn + " trapped: " + msg
}

// instanceKey is the context key under which a call's instance is found by
// the dream.log host function.
type instanceKey struct{}

// callContext is the context of every decide_v1 call of one instance,
// reused so that a call allocates no context: its Done channel is closed
// by the instance's timer at the deadline, which kills the instance for good
// (wazero closes the module), so it never needs to be reset.
//
// Cancellation of the caller's context is not propagated during the call;
// the deadline bounds it.
type callContext struct {
	parent   context.Context // the caller's, during a call
	inst     *instance
	deadline time.Time
	done     chan struct{}
	fired    atomic.Bool
}

func (c *callContext) fire() {
	c.fired.Store(true)
	close(c.done)
}

func (c *callContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *callContext) Done() <-chan struct{}       { return c.done }

func (c *callContext) Err() error {
	if c.fired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *callContext) Value(key any) any {
	if key == (instanceKey{}) {
		return c.inst
	}
	if p := c.parent; p != nil {
		return p.Value(key)
	}
	return nil
}

// logLine appends one plugin log line: to the DryRun capture when set, else
// to the module's rate-limited log.
func (inst *instance) logLine(b []byte) {
	b = truncate(b)
	if inst.capture != nil {
		if len(*inst.capture) < maxCapturedLogs {
			*inst.capture = append(*inst.capture, string(b))
		}
		return
	}
	inst.m.log(b)
}

func truncate(b []byte) []byte {
	if len(b) > maxLogLine {
		b = b[:maxLogLine]
	}
	return bytes.TrimRight(b, "\r")
}

// logWriter splits the guest's stdout and stderr into log lines.
type logWriter struct {
	inst    *instance
	partial []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxLogLine {
				w.flush()
			}
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i]...)
			w.flush()
		} else if i > 0 { // empty lines are dropped
			w.inst.logLine(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush emits a pending partial line.
func (w *logWriter) flush() {
	if len(w.partial) > 0 {
		w.inst.logLine(w.partial)
		w.partial = w.partial[:0]
	}
}
