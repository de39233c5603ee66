package http

// JSON of the track path without reflection. POST /api/track is the one
// call made on every request of a developer's product; encoding/json was a
// sixth of its CPU in process (decode and encode about equally, time
// formatting a third of the encode). Both directions here are held to
// encoding/json byte for byte by tests and a differential fuzz target
// (trackjson_test.go): the encoder writes exactly what json.Marshal writes,
// and the decoder accepts only a plain subset of JSON — anything else
// (escapes, non-ASCII, unknown or repeated keys, null, metadata, exotic
// numbers) is handed to the strict decoder (strict.go), whose answer and
// errors stand: an unknown key is refused there, never dropped here.

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// appendTrackResult appends the JSON of r as json.Marshal writes it, and a
// newline, like encode.
func appendTrackResult(b []byte, r *engine.TrackResult) []byte {
	return appendTrackResultWith(b, r, nil)
}

// appendTrackResultWith is appendTrackResult writing the period bounds
// through pc (nil: formatted each time).
func appendTrackResultWith(b []byte, r *engine.TrackResult, pc *periodCache) []byte {
	b = append(b, `{"success":`...)
	b = strconv.AppendBool(b, r.Success)
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, r.Allowed)
	b = append(b, `,"usage":`...)
	b = appendUsage(b, &r.Usage, pc)
	b = append(b, `,"plugin":`...)
	b = appendPluginInfo(b, r.Plugin)
	return append(b, "}\n"...)
}

// appendErrorBody appends the JSON of an error body without fields (the
// 429 of a denied track among them) as json.Marshal writes it, and a
// newline. Validation errors, with fields, go through appendJSON's
// json.Marshal: they are not on the hot path.
func appendErrorBody(b []byte, e *errorBody) []byte {
	return appendErrorBodyWith(b, e, nil)
}

// appendErrorBodyWith is appendErrorBody writing the period bounds of its
// usage through pc (nil: formatted each time).
func appendErrorBodyWith(b []byte, e *errorBody, pc *periodCache) []byte {
	b = append(b, `{"error":`...)
	b = appendString(b, e.Error)
	b = append(b, `,"code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	b = append(b, `,"requestId":`...)
	b = appendString(b, e.RequestID)
	if e.Usage != nil {
		b = append(b, `,"usage":`...)
		b = appendUsage(b, e.Usage, pc)
	}
	if e.Plugin != nil {
		b = append(b, `,"plugin":`...)
		b = appendPluginInfo(b, e.Plugin)
	}
	return append(b, "}\n"...)
}

func appendUsage(b []byte, u *engine.Usage, pc *periodCache) []byte {
	b = append(b, `{"feature":`...)
	b = appendString(b, u.Feature)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, u.Count, 10)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, u.Limit, 10)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, u.Remaining, 10)
	if u.Plan != "" {
		b = append(b, `,"plan":`...)
		b = appendString(b, u.Plan)
	}
	if pc != nil {
		return append(append(b, pc.bounds(u)...), '}')
	}
	return append(appendPeriod(b, u), '}')
}

func appendPeriod(b []byte, u *engine.Usage) []byte {
	b = append(b, `,"periodStart":`...)
	b = appendTime(b, u.PeriodStart)
	b = append(b, `,"periodEnd":`...)
	return appendTime(b, u.PeriodEnd)
}

// periodCache keeps the JSON of the period bounds last written: the events
// of a batch mostly share them, and time formatting is a third of the
// encoding. Not safe for concurrent use.
type periodCache struct {
	start, end time.Time
	json       []byte
}

// bounds returns the JSON members periodStart and periodEnd of u.
func (pc *periodCache) bounds(u *engine.Usage) []byte {
	if pc.json == nil || pc.start != u.PeriodStart || pc.end != u.PeriodEnd {
		pc.start, pc.end = u.PeriodStart, u.PeriodEnd
		pc.json = appendPeriod(pc.json[:0], u)
	}
	return pc.json
}

func appendPluginInfo(b []byte, p *engine.PluginInfo) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"version":`...)
	b = appendString(b, p.Version)
	b = append(b, `,"message":`...)
	if p.Message == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *p.Message)
	}
	b = append(b, `,"fallback":`...)
	b = strconv.AppendBool(b, p.Fallback)
	return append(b, '}')
}

// appendString appends s as a JSON string. Printable ASCII without the
// characters encoding/json escapes is copied; any other string is left to
// encoding/json (HTML escaping, invalid UTF-8, U+2028…).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			out, _ := json.Marshal(s) // a string always marshals
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTime appends t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds when there are any).
func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		out, err := t.MarshalJSON()
		if err != nil {
			// As json.Marshal would: a programming error, see encode.
			panic(err)
		}
		return append(b, out...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// decodeTrackInput fills in from a body of the plain shape
// {"customerId":"…","feature":"…","quantity":N} (any of the three, any
// order, JSON whitespace between tokens) and reports true; for anything
// else (an unknown key among them) it reports false and leaves in as it
// was, for the strict decoder.
func decodeTrackInput(body []byte, in *engine.TrackInput) bool {
	p := trackParser{b: body}
	var out engine.TrackInput
	if !p.event(&out, nil) {
		return false
	}
	p.space()
	if p.i != len(p.b) {
		return false
	}
	*in = out
	return true
}

// decodeBatchEvents reads a body of the plain shape {"events":[E,…]},
// each E as decodeTrackInput takes it plus "idempotencyKey":"…", into
// events (reused) and reports true; for anything else it reports false,
// for the strict decoder.
func decodeBatchEvents(body []byte, events []engine.BatchEvent) ([]engine.BatchEvent, bool) {
	p := trackParser{b: body, ids: make(map[string]string)}
	events = events[:0]
	if !p.byte('{') {
		return nil, false
	}
	if k, ok := p.raw(); !ok || string(k) != "events" || !p.byte(':') || !p.byte('[') {
		return nil, false
	}
	if p.peek() == ']' {
		p.i++
	} else {
		for {
			var e engine.BatchEvent
			if !p.event(&e.TrackInput, &e.IdempotencyKey) {
				return nil, false
			}
			events = append(events, e)
			if p.peek() == ',' {
				p.i++
				continue
			}
			if !p.byte(']') {
				return nil, false
			}
			break
		}
	}
	if !p.byte('}') {
		return nil, false
	}
	p.space()
	if p.i != len(p.b) {
		return nil, false
	}
	return events, true
}

// event reads one object of the plain track shape into in; with key
// non-nil, "idempotencyKey" is taken too (a batch's event).
func (p *trackParser) event(in *engine.TrackInput, key **string) bool {
	var seen [4]bool
	if !p.byte('{') {
		return false
	}
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		name, ok := p.raw()
		if !ok || !p.byte(':') {
			return false
		}
		var field int
		switch string(name) { // compared without a copy
		case "customerId":
			field = 0
			in.CustomerID, ok = p.id()
		case "feature":
			field = 1
			in.Feature, ok = p.string()
		case "quantity":
			field = 2
			in.Quantity, ok = p.quantity()
		case "idempotencyKey":
			if key == nil {
				return false
			}
			field = 3
			var k string
			k, ok = p.string()
			*key = &k
		default:
			return false
		}
		if !ok || seen[field] {
			return false
		}
		seen[field] = true
		if p.peek() == ',' {
			p.i++
			continue
		}
		return p.byte('}')
	}
}

// trackParser reads the tokens of decodeTrackInput's subset of JSON.
type trackParser struct {
	b []byte
	i int
	// ids, when set, interns customer ids: the events of a batch share
	// few customers.
	ids map[string]string
	// quantities, with ids, are where a batch's quantities are kept, a
	// block at a time instead of one allocation each.
	quantities []int64
}

// quantity reads an integer as int does and returns where it is kept.
func (p *trackParser) quantity() (*int64, bool) {
	if p.ids == nil {
		q, ok := p.int()
		return &q, ok
	}
	n, ok := p.int() // not moved to the heap: its value is
	if len(p.quantities) == cap(p.quantities) {
		p.quantities = make([]int64, 0, 64)
	}
	p.quantities = append(p.quantities, n)
	return &p.quantities[len(p.quantities)-1], ok
}

func (p *trackParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (p *trackParser) peek() byte {
	p.space()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// byte consumes c after whitespace.
func (p *trackParser) byte(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

// string reads a string of printable ASCII without escapes.
func (p *trackParser) string() (string, bool) {
	b, ok := p.raw()
	if !ok {
		return "", false
	}
	return string(b), true
}

// id reads a customer id as string does, interned in p.ids when set.
func (p *trackParser) id() (string, bool) {
	if p.ids == nil {
		return p.string()
	}
	b, ok := p.raw()
	if !ok {
		return "", false
	}
	if s, ok := p.ids[string(b)]; ok { // looked up without a copy
		return s, true
	}
	s := string(b)
	p.ids[s] = s
	return s, true
}

// raw reads a string as string does and returns its bytes, in p.b.
func (p *trackParser) raw() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			b := p.b[start:p.i]
			p.i++
			return b, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// int reads an integer of at most 18 digits (so it cannot overflow), as
// JSON writes it: no leading zeros, no plus sign, no fraction or exponent.
func (p *trackParser) int() (int64, bool) {
	p.space()
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 18 || (digits > 1 && p.b[start] == '0') {
		return 0, false
	}
	// A fraction or exponent that follows is refused by the caller, which
	// wants ',' or '}' next.
	if neg {
		n = -n
	}
	return n, true
}
