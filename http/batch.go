package http

// POST /api/track/batch: up to engine.MaxBatchEvents track events in one
// request, decided in order and made durable in one commit. The answer is
// {"results":[…]} in request order, each result the body /api/track would
// answer for the event on its own with its status in front:
// {"status":200,"success":true,…}, {"status":429,"error":…,"usage":…},
// {"status":404,"error":…}.
//
// Quotas: each event counts once against its customer's per-minute tier
// rate limit (a result of 429 rate_limited when over); the platform's
// requests-per-second quota counts the request once, like any other call
// (checked by s.secret before the body is read).

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/dream-api/dream-api/engine"
)

// trackBatchBody is the body of POST /api/track/batch.
type trackBatchBody struct {
	Events []engine.BatchEvent `json:"events" required:"true"`
}

// batchEvents are the event slices batches are decoded into.
var batchEvents = sync.Pool{New: func() any { s := make([]engine.BatchEvent, 0, 128); return &s }}

// batchBodyBuffers are the buffers batch bodies are read into, instead of
// io.ReadAll's growing copies of a few KiB each time. Nothing keeps a body
// once its batch is answered: the decoders copy what they keep.
var batchBodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (s *Server) trackBatch(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	in := batchBodyBuffers.Get().(*[]byte)
	body, err := readBodyInto(r, (*in)[:0])
	defer func() {
		if cap(body) <= 256<<10 {
			*in = body[:0]
			batchBodyBuffers.Put(in)
		}
	}()
	if err != nil {
		return err
	}
	buf := batchEvents.Get().(*[]engine.BatchEvent)
	defer func() {
		if cap(*buf) <= engine.MaxBatchEvents {
			clear((*buf)[:cap(*buf)]) // no customer ids kept alive
			batchEvents.Put(buf)
		}
	}()
	events, ok := decodeBatchEvents(body, *buf) // trackjson.go: the plain shape without reflection
	if ok {
		*buf = events
	} else {
		var in trackBatchBody
		if err := decode(body, &in, false); err != nil {
			return err
		}
		events = in.Events
	}
	rid := requestID(w)
	idem, err := idempotency(w, r, body, ok200)
	if err != nil {
		return err
	}
	if idem != nil {
		idem.Render = func(res any) (int, []byte) {
			return http.StatusOK, appendBatchResults(nil, res.([]engine.BatchResult), rid)
		}
	}
	var pc periodCache // the records of events' keys are rendered one by one
	results, err := s.eng.Meter.TrackBatch(r.Context(), k.Tenant(), events, idem, func(tr *engine.TrackResult) (int, []byte) {
		return appendEventBody(nil, tr, rid, &pc)
	})
	if err != nil {
		return err
	}
	for i := range results {
		s.countDecision(&results[i])
	}
	out := bodyBuffers.Get().(*[]byte)
	*out = appendBatchResults((*out)[:0], results, rid)
	writeRaw(w, http.StatusOK, *out)
	if cap(*out) <= 64<<10 {
		bodyBuffers.Put(out)
	}
	return nil
}

// countDecision counts an event's decision as /api/track counts its own.
func (s *Server) countDecision(r *engine.BatchResult) {
	switch {
	case r.Result != nil:
		if r.Result.Plugin != nil && r.Result.Plugin.Fallback {
			s.metrics.decision("track", "plugin_fallback")
		}
		if r.Result.Allowed {
			s.metrics.decision("track", "allowed")
		} else {
			s.metrics.decision("track", "denied")
		}
	case engine.ErrorCode(r.Err) == engine.ERATELIMITED:
		s.metrics.decision("track", "rate_limited")
	}
}

// appendBatchResults appends {"results":[…]} and a newline.
func appendBatchResults(b []byte, results []engine.BatchResult, requestID string) []byte {
	var pc periodCache
	b = append(b, `{"results":[`...)
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBatchResult(b, &results[i], requestID, &pc)
	}
	return append(b, "]}\n"...)
}

// appendBatchResult appends one event's result: its /api/track body with
// "status" first.
func appendBatchResult(b []byte, r *engine.BatchResult, requestID string, pc *periodCache) []byte {
	start := len(b)
	var status int
	switch {
	case r.Replay != nil:
		status = r.Replay.Status
		b = append(b, r.Replay.Body...)
	case r.Result != nil:
		status, b = appendEventBody(b, r.Result, requestID, pc)
	default:
		var body *errorBody
		status, body, _ = errorResponse(r.Err, requestID)
		b = appendJSON(b, body)
	}
	// {…}\n → {"status":N,…}
	body := b[start:]
	if n := len(body); n > 0 && body[n-1] == '\n' {
		b = b[:len(b)-1]
	}
	var head [24]byte
	h := strconv.AppendInt(append(head[:0], `{"status":`...), int64(status), 10)
	if len(b)-start > 2 {
		h = append(h, ',')
	}
	// Make room for the head minus the '{' it replaces, then move the body.
	n := len(h) - 1
	b = append(b, h[:n]...)
	copy(b[start+len(h):], b[start+1:len(b)-n])
	copy(b[start:], h)
	return b
}

// appendEventBody appends what /api/track answers for a decided event
// (200, or 429 tier_limit_reached with its usage) and a newline, and
// returns its status.
func appendEventBody(b []byte, tr *engine.TrackResult, requestID string, pc *periodCache) (int, []byte) {
	if tr.Allowed {
		return http.StatusOK, appendTrackResultWith(b, tr, pc)
	}
	return http.StatusTooManyRequests, appendErrorBodyWith(b, &errorBody{
		Error: titles[engine.ETIERLIMIT], Code: engine.ETIERLIMIT, Message: tr.Message,
		RequestID: requestID, Usage: &tr.Usage, Plugin: tr.Plugin,
	}, pc)
}
