package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{.5, 5000 * time.Microsecond}, {.99, 9900 * time.Microsecond}, {1, 10000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if d := got - tc.want; d < -tc.want/100 || d > tc.want/100 {
			t.Errorf("quantile(%v) = %v, want %v ± 1%%", tc.q, got, tc.want)
		}
	}
	if h.quantile(1) > 10000*time.Microsecond {
		t.Errorf("quantile(1) = %v exceeds the largest value", h.quantile(1))
	}
}

func TestHistogramBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := r.Uint64() >> r.IntN(64)
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if lo, w := histLow(i), histWidth(i); v < lo || v-lo >= w {
			t.Fatalf("%d is not in bucket %d [%d, %d+%d)", v, i, lo, lo, w)
		}
	}
}

// TestLoadAgainstNetHTTP drives a net/http server: every request answered,
// counted per connection, bodies of either framing read.
func TestLoadAgainstNetHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "chunked") {
			w.Write([]byte(strings.Repeat("x", 5000))) // over the buffer: chunked
			w.(http.Flusher).Flush()
			w.Write([]byte("end"))
			return
		}
		if strings.Contains(string(b), "deny") {
			w.WriteHeader(429)
		}
		w.Write(ceilingBody)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	bodies := []string{`{"a":1}`, `{"chunked":1}`, `{"deny":1}`}
	var seen [3]int64
	// The run ends by count (MaxPerConn), the window being far longer than a
	// busy machine needs for it: nothing here depends on speed.
	l := &load{Addr: addr, Conns: 3, Duration: time.Minute, MaxPerConn: 20,
		Request: func(c int, n int64, buf []byte) []byte {
			return httpRequest(buf, addr, "/api/track", "sk_x", []byte(bodies[c]), "Idempotency-Key", fmt.Sprint(n))
		},
		Observe: func(c int, n int64, status int) { seen[c]++ },
	}
	res, err := l.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests == 0 {
		t.Fatalf("requests %d, errors %d", res.Requests, res.Errors)
	}
	if res.Status[429] == 0 || res.Status[200] == 0 {
		t.Errorf("status counts %v, want 200s and 429s", res.Status)
	}
	if res.OK[2] != 0 || res.OK[0] == 0 || res.OK[1] == 0 {
		t.Errorf("2xx per connection %v", res.OK)
	}
	if res.FirstStatus != 200 || string(res.First) != string(ceilingBody) {
		t.Errorf("first answer %d %q", res.FirstStatus, res.First)
	}
	for c, n := range seen {
		if n != 21 {
			t.Errorf("connection %d observed %d answers, want 21 (priming + 20)", c, n)
		}
	}
}

// TestLoadRate paces requests: never faster than the rate. (How close to
// the rate a run gets depends on the machine's speed, which no test
// asserts on.)
func TestLoadRate(t *testing.T) {
	srv := httptest.NewServer(ceilingHandler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	req := httpRequest(nil, addr, "/api/track", "", []byte(`{}`))
	l := &load{Addr: addr, Conns: 4, Duration: time.Second, Rate: 400,
		Request: func(int, int64, []byte) []byte { return req }}
	res, err := l.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Each connection sends its k-th request no sooner than k intervals
	// (10 ms) into the window: at most 101 each in 1 s.
	if rps := res.RPS(); res.Requests == 0 || rps > 404 {
		t.Errorf("%d requests, %.0f req/s at a rate of 400", res.Requests, rps)
	}
}

// TestLoadReconnects: a server that closes connections is redialed.
func TestLoadReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for i := 0; i < 3; i++ {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					hdr := ""
					if i == 2 {
						hdr = "Connection: close\r\n"
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\nok", hdr)
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	req := httpRequest(nil, addr, "/", "", []byte(`{}`))
	// Ends by count: 9 requests a connection, a redial every third.
	l := &load{Addr: addr, Conns: 2, Duration: time.Minute, MaxPerConn: 9,
		Request: func(int, int64, []byte) []byte { return req }}
	res, err := l.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests != 18 {
		t.Errorf("requests %d, errors %d", res.Requests, res.Errors)
	}
}

func TestParseRunFlags(t *testing.T) {
	c, err := parseRunFlags([]string{"-conns", "8, 16", "-skip", "redis,postgres", "-duration", "1s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Conns) != 2 || c.Conns[1] != 16 || !c.Skip["redis"] || !c.Skip["postgres"] || c.Duration != time.Second {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range [][]string{{"-conns", "0"}, {"-conns", "x"}, {"-duration", "0s"}, {"extra"}} {
		if _, err := parseRunFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestSoakMix(t *testing.T) {
	for c := range 4 {
		for n := int64(1); n < 200; n++ {
			if soakKind(n) != soakRetry {
				continue
			}
			if soakKind(n-1) != soakTrackIdem {
				t.Fatalf("call %d retries call %d, which has no key", n, n-1)
			}
			c1, f1 := soakTarget(c, n, 1000)
			c0, f0 := soakTarget(c, n-1, 1000)
			if c1 != c0 || f1 != f0 {
				t.Fatalf("call %d retries call %d with another body", n, n-1)
			}
		}
	}
}
