package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPLimitsFromEnvAndFlags: the timeouts and the bound on
// unauthenticated bodies come from the environment, flags win, and
// anything that bounds nothing is refused with the name of the setting.
func TestHTTPLimitsFromEnvAndFlags(t *testing.T) {
	parse := func(env map[string]string, args ...string) (*Main, error) {
		m := NewMain()
		m.Getenv = func(k string) string { return env[k] }
		m.Stderr = &bytes.Buffer{}
		return m, m.ParseFlags(t.Context(), args)
	}
	m, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Config.HTTP, (HTTPConfig{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxUnauthenticatedBodies: 64}); got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	m, err = parse(map[string]string{"DREAM_READ_TIMEOUT": "5s", "DREAM_WRITE_TIMEOUT": "1m", "DREAM_MAX_UNAUTHENTICATED_BODIES": "8"},
		"--read-timeout", "7s", "--idle-timeout", "30s", "--read-header-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Config.HTTP, (HTTPConfig{ReadHeaderTimeout: 3 * time.Second, ReadTimeout: 7 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 30 * time.Second, MaxUnauthenticatedBodies: 8}); got != want {
		t.Errorf("configured %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"DREAM_READ_TIMEOUT": "soon"}, nil, "DREAM_READ_TIMEOUT"},
		{map[string]string{"DREAM_IDLE_TIMEOUT": "-1s"}, nil, "DREAM_IDLE_TIMEOUT"},
		{map[string]string{"DREAM_MAX_UNAUTHENTICATED_BODIES": "0"}, nil, "DREAM_MAX_UNAUTHENTICATED_BODIES"},
		{nil, []string{"--write-timeout", "0s"}, "--write-timeout"},
		{nil, []string{"--max-unauthenticated-bodies", "-3"}, "--max-unauthenticated-bodies"},
	} {
		if _, err := parse(tc.env, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want an error naming %s", tc.env, tc.args, err, tc.want)
		}
	}
}

// TestReadTimeoutCutsOffTricklingWebhook runs the program with a small
// DREAM_READ_TIMEOUT: a webhook body that trickles in (no key needed) is
// cut off and its connection closed, and the server still answers.
func TestReadTimeoutCutsOffTricklingWebhook(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_READ_TIMEOUT": "200ms"})
	if srv := ts.Main.srv; srv.ReadHeaderTimeout != 10*time.Second || srv.WriteTimeout != 2*time.Minute || srv.IdleTimeout != 2*time.Minute {
		t.Errorf("http.Server timeouts: header %v, write %v, idle %v", srv.ReadHeaderTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	c, err := net.Dial("tcp", ts.Main.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /webhook/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=00\r\nContent-Length: 100000\r\n\r\n{")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	// Generous: the server cuts the body off after 200 ms.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	if res, err := http.ReadResponse(br, nil); err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("cut-off body answered %d, want 400", res.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("no answer: the server still waits for the body")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("more than one answer")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the connection is still open")
	}
	ts.expect(t, req{Method: "GET", Path: "/health"}, 200, "")
}
