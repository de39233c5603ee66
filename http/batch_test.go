package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/engine"
)

// batchServer is a server whose platform's free tier allows 5 requests
// and 2 exports, with one customer.
func batchServer(t *testing.T) (s *Server, sk string, eng *engine.Engine, tenant engine.Tenant, cus string) {
	t.Helper()
	s, sk, eng, tenant = strictServer(t)
	ctx := context.Background()
	if _, err := eng.Tiers.Put(ctx, tenant, engine.TierConfigInput{Tiers: []engine.TierInput{
		{Name: "free", Limits: map[string]int64{"requests": 5, "exports": 2}},
	}}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := eng.Customers.Create(ctx, tenant, "", engine.CreateCustomerInput{Email: "batch@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, sk, eng, tenant, c.ID
}

type batchReply struct {
	Results []map[string]any `json:"results"`
}

func batchOf(t *testing.T, w interface{ Result() *http.Response }) batchReply {
	t.Helper()
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var out batchReply
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return out
}

// summary is a result in a word: its status, and its code or count.
func summary(r map[string]any) string {
	if c, ok := r["code"]; ok {
		return fmt.Sprintf("%v %v", r["status"], c)
	}
	return fmt.Sprintf("%v %v", r["status"], r["usage"].(map[string]any)["count"])
}

// Each result is what /api/track answers for the event on its own, with
// its status first; the errors are the events' own.
func TestTrackBatchResults(t *testing.T) {
	s, sk, _, _, id := batchServer(t)
	body := `{"events":[
		{"customerId":"` + id + `"},
		{"customerId":"` + id + `","quantity":3,"idempotencyKey":"e1"},
		{"customerId":"` + id + `","quantity":2},
		{"customerId":"cus_nobody"},
		{"customerId":"` + id + `","feature":"typo"},
		{"customerId":"` + id + `","quantity":0},
		{"customerId":"` + id + `","feature":"exports","metadata":{"a":[1]}},
		{"customerId":"` + id + `","quantity":3,"idempotencyKey":"e1"},
		{"customerId":"` + id + `","quantity":1,"idempotencyKey":"e1"}
	]}`
	w := call(t, s, "POST", "/api/track/batch", sk, body)
	got := batchOf(t, w)
	var sums []string
	for _, r := range got.Results {
		sums = append(sums, summary(r))
	}
	want := "200 1, 200 4, 429 tier_limit_reached, 404 not_found, 422 unknown_feature, 422 validation_failed, 200 1, 200 4, 409 idempotency_conflict"
	if strings.Join(sums, ", ") != want {
		t.Fatalf("results\n got  %s\n want %s", strings.Join(sums, ", "), want)
	}
	denied := got.Results[2]
	if u, ok := denied["usage"].(map[string]any); !ok || u["count"] != json.Number("4") || u["limit"] != json.Number("5") {
		t.Errorf("429 result without the usage that was not exceeded: %v", denied)
	}
	if denied["requestId"] != w.Header().Get("X-Request-Id") {
		t.Errorf("requestId %v, want the request's %s", denied["requestId"], w.Header().Get("X-Request-Id"))
	}
	if f := got.Results[5]["fields"].([]any); len(f) != 1 || f[0].(map[string]any)["field"] != "quantity" {
		t.Errorf("validation result fields %v, want quantity", f)
	}
	// A result is /api/track's body: the same members (and "status").
	single := call(t, s, "POST", "/api/track", sk, `{"customerId":"`+id+`","feature":"exports"}`)
	var one map[string]any
	json.Unmarshal(single.Body.Bytes(), &one)
	allowed := got.Results[0]
	delete(allowed, "status")
	if keys(one) != keys(allowed) {
		t.Errorf("result members %s, /api/track's %s", keys(allowed), keys(one))
	}
	// The replayed event answers its first answer, byte for byte.
	again := call(t, s, "POST", "/api/track/batch", sk, `{"events":[{"customerId":"`+id+`","quantity":3,"idempotencyKey":"e1"}]}`)
	first := resultBytes(t, w.Body.Bytes(), 1)
	if r := resultBytes(t, again.Body.Bytes(), 0); !bytes.Equal(r, first) {
		t.Errorf("replay of e1\n got  %s\n want %s", r, first)
	}
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return strings.Join(ks, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// resultBytes returns the raw JSON of result i of a batch answer.
func resultBytes(t *testing.T, body []byte, i int) []byte {
	t.Helper()
	var out struct{ Results []json.RawMessage }
	if err := json.Unmarshal(body, &out); err != nil || i >= len(out.Results) {
		t.Fatalf("%s: %v", body, err)
	}
	return out.Results[i]
}

// Bodies the batch refuses as a whole: nothing is counted.
func TestTrackBatchRefused(t *testing.T) {
	s, sk, eng, tenant, id := batchServer(t)
	ev := `{"customerId":"` + id + `"}`
	many := func(n int) string {
		return `{"events":[` + strings.TrimSuffix(strings.Repeat(ev+",", n), ",") + `]}`
	}
	tests := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"unknown member of an event", `{"events":[` + ev + `,` + ev + `,` + ev + `,{"customerId":"` + id + `","quantiy":5}]}`, 422, engine.EVALIDATION, "events[3].quantiy"},
		{"unknown top-level member", `{"events":[` + ev + `],"evnts":[]}`, 422, engine.EVALIDATION, "evnts"},
		{"no events", `{"events":[]}`, 422, engine.EVALIDATION, "events"},
		{"events absent", `{}`, 422, engine.EVALIDATION, "events"},
		{"events null", `{"events":null}`, 422, engine.EVALIDATION, "events"},
		{"1001 events", many(1001), 422, engine.EVALIDATION, "events"},
		{"quantity a string", `{"events":[{"customerId":"` + id + `","quantity":"5"}]}`, 400, engine.EINVALIDJSON, "events[0].quantity"},
		{"not an object", `[` + ev + `]`, 400, engine.EINVALIDJSON, ""},
		{"over 1 MiB", `{"events":[{"customerId":"` + id + `","metadata":{"x":"` + strings.Repeat("x", MaxBodyBytes) + `"}}]}`, 413, engine.EBODYTOOLARGE, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := call(t, s, "POST", "/api/track/batch", sk, tc.body)
			e := errorOf(t, w, tc.status, tc.code)
			if tc.field != "" && !namesField(e, tc.field) {
				t.Errorf("fields %+v do not name %s", e.Fields, tc.field)
			}
		})
	}
	u, err := eng.Meter.Usage(context.Background(), tenant, id)
	if err != nil || u.Usage[1].Count != 0 {
		t.Errorf("usage after refused batches: %+v, %v", u, err)
	}
	// 1000 events is the most, and fine.
	if got := batchOf(t, call(t, s, "POST", "/api/track/batch", sk, many(1000))); len(got.Results) != 1000 || summary(got.Results[999]) != "429 tier_limit_reached" {
		t.Errorf("1000 events: %d results", len(got.Results))
	}
}

// The request's Idempotency-Key replays the whole answer byte for byte
// and counts nothing again; another body with it is 409.
func TestTrackBatchIdempotencyKey(t *testing.T) {
	s, sk, eng, tenant, id := batchServer(t)
	body := `{"events":[{"customerId":"` + id + `"},{"customerId":"` + id + `","quantity":2}]}`
	first := call(t, s, "POST", "/api/track/batch", sk, body, "Idempotency-Key", "b-1")
	again := call(t, s, "POST", "/api/track/batch", sk, body, "Idempotency-Key", "b-1")
	if first.Code != 200 || again.Code != 200 || !bytes.Equal(first.Body.Bytes(), again.Body.Bytes()) {
		t.Errorf("replay %d %s\nfirst %d %s", again.Code, again.Body, first.Code, first.Body)
	}
	if again.Header().Get("Idempotent-Replayed") != "true" || again.Header().Get("X-Request-Id") != first.Header().Get("X-Request-Id") {
		t.Errorf("replay headers %v", again.Header())
	}
	other := call(t, s, "POST", "/api/track/batch", sk, `{"events":[{"customerId":"`+id+`"}]}`, "Idempotency-Key", "b-1")
	errorOf(t, other, 409, engine.EIDEMPOTENCYCONFLICT)
	u, err := eng.Meter.Usage(context.Background(), tenant, id)
	if err != nil || u.Usage[1].Count != 3 {
		t.Errorf("usage %+v, %v; want 3 requests counted once", u, err)
	}
}

// batchBodies are bodies of POST /api/track/batch for the decoders.
var batchBodies = []string{
	`{"events":[{"customerId":"cus_a"}]}`,
	`{"events":[]}`,
	` { "events" : [ {"customerId":"cus_a","quantity":2,"feature":"x","idempotencyKey":"k 1"} , {} ] } `,
	`{"events":[{"customerId":"cus_a","idempotencyKey":"k","idempotencyKey":"j"}]}`,
	`{"events":[{"customerId":"cus_a","idempotencyKey":null}]}`,
	`{"events":[{"customerId":"cus_a","metadata":{"a":1}}]}`,
	`{"events":[{"customerId":"cus_\u00e9"}]}`,
	`{"events":[{"customerId":"cus_a"}],"more":1}`,
	`{"events":[{"customerId":"cus_a","quantiy":1}]}`,
	`{"events":[{"customerId":"cus_a"}]}x`,
	`{"events":[{"customerId":"cus_a"},]}`,
	`{"events":{"customerId":"cus_a"}}`,
	`{"events":[{"customerId":"cus_a","quantity":-3}]}`,
	`{"events":[{"customerId":"cus_a","quantity":1.5}]}`,
	`{"events":[1]}`,
}

// The plain path decodes exactly what the strict decoder does, and leaves
// anything else to it.
func TestDecodeBatchEventsMatchesStrict(t *testing.T) {
	plain := 0
	for _, body := range batchBodies {
		var strict trackBatchBody
		err := decode([]byte(body), &strict, false)
		fast, ok := decodeBatchEvents([]byte(body), nil)
		if !ok {
			continue
		}
		plain++
		if err != nil {
			t.Errorf("%s: the plain path took it, the strict decoder says %v", body, err)
			continue
		}
		if len(fast) == 0 && len(strict.Events) == 0 {
			continue
		}
		if !reflect.DeepEqual(fast, strict.Events) {
			t.Errorf("%s: plain %+v, strict %+v", body, fast, strict.Events)
		}
	}
	if plain != 4 {
		t.Errorf("%d bodies took the plain path, want 4", plain)
	}
}

// appendBatchResult puts the status in front of any body.
func TestAppendBatchResult(t *testing.T) {
	tests := []struct {
		rec  engine.IdemRecord
		want string
	}{
		{engine.IdemRecord{Status: 200, Body: []byte("{\"a\":1}\n")}, `{"status":200,"a":1}`},
		{engine.IdemRecord{Status: 429, Body: []byte(`{}`)}, `{"status":429}`},
		{engine.IdemRecord{Status: 404, Body: []byte(`{"x":"y","z":[1,2]}`)}, `{"status":404,"x":"y","z":[1,2]}`},
	}
	for _, tc := range tests {
		got := appendBatchResult([]byte("prefix"), &engine.BatchResult{Replay: &tc.rec}, "req_x", nil)
		if string(got) != "prefix"+tc.want {
			t.Errorf("%s: got %s, want %s", tc.rec.Body, got, tc.want)
		}
	}
}

// BenchmarkServeTrackBatch is POST /api/track/batch with 100 events
// through the whole Server on a durable store, in process, each goroutine
// on its own customers. tracks/s is the events decided per second.
func BenchmarkServeTrackBatch(b *testing.B) {
	const size = 100
	for _, goroutines := range []int{1, 8} {
		b.Run(fmt.Sprintf("events=%d/goroutines=%d", size, goroutines), func(b *testing.B) {
			e := newBenchEnv(b)
			// Each goroutine's batch spreads over 10 customers of its own.
			bodies := make([][]byte, goroutines)
			for g := range bodies {
				var ids []string
				for i := range 10 {
					ids = append(ids, e.customer(b, fmt.Sprintf("b%d-%d@bench.example", g, i)))
				}
				var sb strings.Builder
				sb.WriteString(`{"events":[`)
				for i := range size {
					if i > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"customerId":%q,"quantity":1}`, ids[i%len(ids)])
				}
				sb.WriteString(`]}`)
				bodies[g] = []byte(sb.String())
			}
			defer func() {
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "tracks/s")
			}()
			e.serve(b, "/api/track/batch", goroutines, bodies)
		})
	}
}

// A batch's results are /api/track's bodies, byte for byte, with their
// status in front, however the events' periods repeat (the period cache).
func TestBatchResultsMatchTrackBodies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var results []engine.BatchResult
		var want strings.Builder
		want.WriteString(`{"results":[`)
		for i := range 1 + r.IntN(8) {
			tr := randomTrackResult(r)
			if i > 0 && r.IntN(2) == 0 { // the period of the one before
				prev := results[i-1].Result.Usage
				tr.Usage.PeriodStart, tr.Usage.PeriodEnd = prev.PeriodStart, prev.PeriodEnd
			}
			results = append(results, engine.BatchResult{Result: tr})
			if i > 0 {
				want.WriteByte(',')
			}
			status, body := trackReply("req_x", false)(tr)
			want.WriteString(fmt.Sprintf(`{"status":%d,`, status))
			want.WriteString(strings.TrimSuffix(marshalled(t, body), "\n")[1:])
		}
		want.WriteString("]}\n")
		if got := string(appendBatchResults(nil, results, "req_x")); got != want.String() {
			t.Fatalf("got  %s\nwant %s", got, want.String())
		}
	}
}

// FuzzDecodeBatchEvents holds the plain batch decoder to the strict one:
// whatever it takes, the strict decoder takes and decodes the same.
func FuzzDecodeBatchEvents(f *testing.F) {
	for _, b := range batchBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeBatchEvents(body, nil)
		if !ok {
			return
		}
		var strict trackBatchBody
		if err := decode(body, &strict, false); err != nil {
			t.Fatalf("%q: the plain path took it, the strict decoder says %v", body, err)
		}
		if len(fast) == 0 && len(strict.Events) == 0 {
			return
		}
		if !reflect.DeepEqual(fast, strict.Events) {
			t.Fatalf("%q: plain %+v, strict %+v", body, fast, strict.Events)
		}
	})
}
