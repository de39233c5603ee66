package http

// The track path's JSON (trackjson.go) against encoding/json, byte for
// byte. `go test ./http/` runs the fuzz targets' seeds; to fuzz:
//
//	go test -run='^$' -fuzz=FuzzDecodeTrackInput -fuzztime=60s ./http/
//	go test -run='^$' -fuzz=FuzzAppendTrackResult -fuzztime=60s ./http/

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// marshalled is what encode wrote before trackjson.go: json.Marshal and a
// newline.
func marshalled(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

var jsonStrings = []string{
	"", "requests", "free", "pro plan", `quo"te`, `back\slash`, "<script>&", "tab\there", "nul\x00",
	"ünïcödé", "emoji 🙂", "line\u2028sep", "bad utf8 \xff\xfe", "del\x7f", "Please upgrade to unlock more requests",
}

func randomTrackResult(r *rand.Rand) *engine.TrackResult {
	pick := func() string { return jsonStrings[r.IntN(len(jsonStrings))] }
	ints := []int64{0, 1, 42, -1, 1_000_000_000_000, -9223372036854775808, 9223372036854775807}
	start := time.Date(2000+r.IntN(100), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
	if r.IntN(3) == 0 {
		start = start.Add(time.Duration(r.IntN(1_000_000_000)))
	}
	res := &engine.TrackResult{
		Success: r.IntN(2) == 0, Allowed: r.IntN(2) == 0, Message: pick(),
		Usage: engine.Usage{
			Feature: pick(), Count: ints[r.IntN(len(ints))], Limit: ints[r.IntN(len(ints))],
			Remaining: ints[r.IntN(len(ints))], Plan: pick(), PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0),
		},
	}
	if r.IntN(2) == 0 {
		res.Plugin = &engine.PluginInfo{Version: pick(), Fallback: r.IntN(2) == 0}
		if r.IntN(2) == 0 {
			m := pick()
			res.Plugin.Message = &m
		}
	}
	return res
}

func TestTrackResultJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		res := randomTrackResult(r)
		if got, want := string(appendTrackResult(nil, res)), marshalled(t, res); got != want {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
		// The 429 body of a denial carries the same usage and plugin.
		u := res.Usage
		eb := &errorBody{Error: "Tier limit reached", Code: engine.ETIERLIMIT, Message: res.Message,
			RequestID: "req_01", Usage: &u, Plugin: res.Plugin}
		if r.IntN(4) == 0 {
			eb.Usage = nil
		}
		if r.IntN(4) == 0 {
			eb.Fields = []engine.FieldError{{Field: "quantity", Message: "must be an integer"}}
		}
		if got, want := string(appendJSON(nil, eb)), marshalled(t, eb); got != want {
			t.Fatalf("error body %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Years outside 0..9999 cannot be written: like json.Marshal, panic.
	res := randomTrackResult(r)
	res.Usage.PeriodEnd = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := json.Marshal(res); err == nil {
		t.Fatal("json.Marshal wrote year 10000")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("appendTrackResult wrote year 10000")
			}
		}()
		appendTrackResult(nil, res)
	}()
}

// trackBodies are inputs for the decoder: the plain ones it decodes itself
// and every kind it must leave to encoding/json.
var trackBodies = []string{
	`{"customerId":"cus_1"}`,
	`{"customerId":"cus_1","feature":"api_calls","quantity":5}`,
	` { "quantity" : 12 , "feature":"x" ,"customerId":"c" } ` + "\n",
	`{}`, `{ }`, `{"quantity":0}`, `{"quantity":-3}`, `{"quantity":-0}`,
	`{"quantity":999999999999999999}`, `{"quantity":9223372036854775807}`, `{"quantity":9223372036854775808}`,
	`{"quantity":01}`, `{"quantity":1.0}`, `{"quantity":1e3}`, `{"quantity":+1}`, `{"quantity":"1"}`,
	`{"quantity":null}`, `{"quantity":true}`, `{"quantity":-}`, `{"quantity":1x}`,
	`{"customerId":"a\"b"}`, `{"customerId":"a\u0062"}`, `{"customerId":"ü"}`, `{"customerId":"a` + "\t" + `b"}`,
	`{"customerId":null}`, `{"customerId":1}`, `{"CustomerID":"case"}`, `{"customerid":"case"}`,
	`{"customerId":"a","customerId":"b"}`, `{"other":1}`, `{"metadata":{"a":1}}`, `{"customerId":"a","metadata":null}`,
	`{"customerId":"a",}`, `{"customerId":"a"`, `{"customerId":"a"}}`, `{"customerId":"a"} x`, `[]`, `null`, `""`,
	`{"customerId" "a"}`, `{customerId:"a"}`, "\ufeff{}", `{"feature":"a","quantity":1,"customerId":"b","quantity":2}`,
	`{"customerId":"a","quantiy":5}`, `{"feture":"x","customerId":"a"}`, `{"customerId":"a","metadata":{"quantiy":1}}`,
	`{"quantity":1e23}`, `{"quantity":1.5}`, `{"customerId":"a","metadata":[1]}`, `{"customerId":"a","x":{"y":[1,{"z":null}]}}`,
}

func TestDecodeTrackInputMatchesEncodingJSON(t *testing.T) {
	plain := 0
	for _, body := range trackBodies {
		if checkTrackDecode(t, []byte(body)) {
			plain++
		}
	}
	if plain < 9 {
		t.Fatalf("only %d of the bodies took the plain path", plain)
	}
}

// checkTrackDecode holds decodeTrackInput to the strict decoder and to
// encoding/json on body, and the strict decoder to encoding/json, and
// reports whether the plain path took it.
func checkTrackDecode(t *testing.T, body []byte) bool {
	t.Helper()
	checkStrictTrack(t, body)
	var fast engine.TrackInput
	if !decodeTrackInput(body, &fast) {
		if !reflect.DeepEqual(fast, engine.TrackInput{}) {
			t.Fatalf("%q: refused, but changed the input to %+v", body, fast)
		}
		return false
	}
	var slow engine.TrackInput
	if err := json.Unmarshal(body, &slow); err != nil {
		t.Fatalf("%q: decoded as %+v, but encoding/json says %v", body, fast, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: decoded %s, encoding/json %s", body, show(fast), show(slow))
	}
	var strict engine.TrackInput
	if err := decode(body, &strict, false); err != nil {
		t.Fatalf("%q: decoded as %s, but the strict decoder says %v", body, show(fast), err)
	}
	if !reflect.DeepEqual(fast, strict) {
		t.Fatalf("%q: decoded %s, strict decoder %s", body, show(fast), show(strict))
	}
	return true
}

// trackKeys are the members of a track body.
var trackKeys = map[string]bool{"customerId": true, "feature": true, "quantity": true, "metadata": true}

// checkStrictTrack holds the strict decoder to encoding/json on a track
// body: it accepts exactly what encoding/json accepts of a JSON object whose
// keys are trackKeys, each at most once, and decodes it the same; a body it
// refuses for unknown fields has them, and its fields name them.
func checkStrictTrack(t *testing.T, body []byte) {
	t.Helper()
	var strict, slow engine.TrackInput
	err := decode(body, &strict, false)
	slowErr := json.Unmarshal(body, &slow)
	keys, object := topLevelKeys(body)
	plain := object && slowErr == nil
	var unknown []string
	seen := map[string]bool{}
	for _, k := range keys {
		if !trackKeys[k] {
			unknown = append(unknown, k)
		} else if seen[k] {
			plain = false
		}
		seen[k] = true
	}
	plain = plain && len(unknown) == 0
	switch {
	case err == nil && !plain:
		t.Fatalf("%q: the strict decoder accepts it (%s); encoding/json: %v, keys %q", body, show(strict), slowErr, keys)
	case err == nil && !reflect.DeepEqual(strict, slow):
		t.Fatalf("%q: strict decoder %s, encoding/json %s", body, show(strict), show(slow))
	case err != nil && plain:
		t.Fatalf("%q: the strict decoder refuses it (%v); encoding/json decodes %s", body, err, show(slow))
	case err != nil && object && len(unknown) > 0:
		e, ok := err.(*engine.Error)
		if !ok || (e.Code != engine.EVALIDATION && e.Code != engine.EINVALIDJSON) {
			t.Fatalf("%q: unknown fields %q answered %v", body, unknown, err)
		}
		named := map[string]bool{}
		for _, f := range e.Fields {
			if f.Message == "unknown field" {
				if trackKeys[f.Field] {
					t.Fatalf("%q: known field %q called unknown", body, f.Field)
				}
				named[f.Field] = true
			}
		}
		for _, k := range unknown {
			if !named[k] && len(e.Fields) < maxBodyProblems {
				t.Fatalf("%q: unknown field %q not named in %+v", body, k, e.Fields)
			}
		}
	}
}

// topLevelKeys returns the keys of body's top-level object in order, and
// whether body is one JSON object.
func topLevelKeys(body []byte) ([]string, bool) {
	if !json.Valid(body) {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, false
		}
		keys = append(keys, tok.(string))
	}
	return keys, true
}

func show(in engine.TrackInput) string {
	q := "nil"
	if in.Quantity != nil {
		q = fmt.Sprint(*in.Quantity)
	}
	return fmt.Sprintf("{%q %q %s %q}", in.CustomerID, in.Feature, q, in.Metadata)
}

func FuzzDecodeTrackInput(f *testing.F) {
	for _, b := range trackBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkTrackDecode(t, body) })
}

func FuzzAppendTrackResult(f *testing.F) {
	for i, s := range jsonStrings {
		f.Add(s, jsonStrings[(i+1)%len(jsonStrings)], int64(i), int64(-i), int64(1700000000+i), int64(i*997))
	}
	f.Fuzz(func(t *testing.T, feature, plan string, count, limit, unix, nanos int64) {
		start := time.Unix(unix%253402300799, nanos%1_000_000_000).UTC()
		if start.Year() < 0 {
			return
		}
		msg := plan + feature
		res := &engine.TrackResult{Success: true, Allowed: count%2 == 0, Plugin: &engine.PluginInfo{Version: plan, Message: &msg},
			Usage: engine.Usage{Feature: feature, Count: count, Limit: limit, Remaining: limit - count, Plan: plan,
				PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0)}}
		if res.Usage.PeriodEnd.Year() > 9999 {
			return
		}
		if got, want := string(appendTrackResult(nil, res)), marshalled(t, res); got != want {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
