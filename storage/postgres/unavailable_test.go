package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// cutter is a TCP proxy in front of PostgreSQL that, once armed, drops the
// first connection on which the client sends trigger, before the message
// reaches the server: a connection lost at a chosen point of a unit.
type cutter struct {
	ln      net.Listener
	target  string
	trigger atomic.Pointer[[]byte]
	cuts    atomic.Int64
	// hang, set before arm, makes the armed trigger stop the connection
	// instead of cutting it: the client's bytes are swallowed from there
	// on and nothing answers, as from a hung server or a partition.
	hang  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

// newCutter proxies the database at dbURL and returns the URL through it.
func newCutter(t *testing.T, dbURL string) (*cutter, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: u.Host}
	t.Cleanup(c.close)
	go c.serve()
	u.Host = ln.Addr().String()
	return c, u.String()
}

// arm makes the proxy cut the next connection that sends trigger.
func (c *cutter) arm(trigger string) {
	b := []byte(trigger)
	c.trigger.Store(&b)
}

func (c *cutter) serve() {
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", c.target)
		if err != nil {
			client.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, client, server)
		c.mu.Unlock()
		go func() { io.Copy(client, server); client.Close() }()
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if tr := c.trigger.Load(); tr != nil && bytes.Contains(buf[:n], *tr) && c.trigger.CompareAndSwap(tr, nil) {
						c.cuts.Add(1)
						if c.hang.Load() {
							io.Copy(io.Discard, client) // until the client gives up
						}
						client.Close()
						server.Close()
						return
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					server.Close()
					return
				}
			}
		}()
	}
}

// lockStatement is text of the statement a unit takes its locks with on
// the database at url: lock rows on CockroachDB, else advisory locks.
func lockStatement(t *testing.T, url string) string {
	t.Helper()
	if isCockroach(t, url) {
		return "dream_locks"
	}
	return "pg_advisory_xact_lock"
}

func (c *cutter) close() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// A connection lost in the middle of a unit of work is EUNAVAILABLE: before
// COMMIT was sent it says nothing was changed (and nothing was); during
// COMMIT it says the outcome is unknown, and a retry with the same
// Idempotency-Key runs the call once.
func TestConnectionLostMidUnit(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) { connectionLostMidUnit(t, group) })
	}
}

// trackedCustomer makes, through n, a platform named name whose tier
// meters requests up to 1 000, and one customer of it, and returns the
// tenant and a track of one request by that customer.
func trackedCustomer(t *testing.T, n *node, name string) (engine.Tenant, engine.TrackInput) {
	t.Helper()
	np, err := n.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	if _, err := n.eng.Tiers.Put(ctx, tenant, limitTiers(1000), nil); err != nil {
		t.Fatal(err)
	}
	cus, err := n.eng.Customers.Create(ctx, tenant, np.PublishableKey, engine.CreateCustomerInput{Email: strings.ToLower(name) + "@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	one := int64(1)
	return tenant, engine.TrackInput{CustomerID: cus.ID, Feature: "requests", Quantity: &one}
}

func connectionLostMidUnit(t *testing.T, group bool) {
	dbURL := pgtest.Database(t)
	direct := newNode(t, "direct", dbURL, nil)
	cut, proxied := newCutter(t, dbURL)
	// Statements sent as text every time (not prepared once), so that the
	// proxy sees which one runs.
	n := newNode(t, "proxied", proxied+"&default_query_exec_mode=exec", &postgres.Options{GroupCommit: group})

	tenant, in := trackedCustomer(t, direct, "Cut")
	// Warm the proxied node (caches, pooled connections).
	if _, err := n.eng.Meter.Track(ctx, tenant, in, nil); err != nil {
		t.Fatal(err)
	}
	count := func() int64 {
		t.Helper()
		u, err := direct.eng.Meter.Usage(ctx, tenant, in.CustomerID)
		if err != nil || len(u.Usage) != 1 {
			t.Fatalf("usage: %+v, %v", u, err)
		}
		return u.Usage[0].Count
	}

	for i, tc := range []struct{ name, trigger, message string }{
		// The unit's lock statement: the transaction never got further.
		{"before commit", lockStatement(t, dbURL), "nothing was changed"},
		// COMMIT itself (pgx sends it as the statement "commit"): the
		// proxy drops it, so it did not commit, but the node cannot know.
		{"during commit", "commit\x00", "may or may not have taken effect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, cuts := count(), cut.cuts.Load()
			key := fmt.Sprintf("cut-%d", i) // not containing a trigger
			cut.arm(tc.trigger)
			_, err := n.eng.Meter.Track(ctx, tenant, in, idem(key))
			if cut.cuts.Load() != cuts+1 {
				t.Fatalf("the proxy cut %d connections, want 1 (err %v)", cut.cuts.Load()-cuts, err)
			}
			var e *engine.Error
			if !errors.As(err, &e) || e.Code != engine.EUNAVAILABLE || e.RetryAfter != 1 || !strings.Contains(e.Message, tc.message) {
				t.Fatalf("track over a lost connection: %v, want EUNAVAILABLE saying %q", err, tc.message)
			}
			if got := count(); got != before {
				t.Errorf("count after the lost connection = %d, want %d", got, before)
			}
			// The same key again: counted once, then replayed.
			for range 2 {
				if _, err := n.eng.Meter.Track(ctx, tenant, in, idem(key)); err != nil {
					if _, replayed := engine.AsReplayed(err); replayed {
						continue
					}
					t.Fatalf("retry with the same key: %v", err)
				}
			}
			if got := count(); got != before+1 {
				t.Errorf("count after two retries with the same key = %d, want %d", got, before+1)
			}
		})
	}
}

// A database that stops answering without closing the connection holds a
// unit for Options.UnitTimeout, then the call is EUNAVAILABLE and nothing
// was counted; the node serves again once the database answers.
func TestUnitTimeoutOnHungDatabase(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			dbURL := pgtest.Database(t)
			direct := newNode(t, "direct", dbURL, nil)
			hung, proxied := newCutter(t, dbURL)
			hung.hang.Store(true)
			n := newNode(t, "proxied", proxied+"&default_query_exec_mode=exec",
				&postgres.Options{GroupCommit: group, UnitTimeout: 300 * time.Millisecond})

			tenant, in := trackedCustomer(t, direct, "Hung")
			if _, err := n.eng.Meter.Track(ctx, tenant, in, nil); err != nil {
				t.Fatal(err)
			}
			hung.arm(lockStatement(t, dbURL))
			began := time.Now()
			_, err := n.eng.Meter.Track(ctx, tenant, in, nil)
			t.Logf("the call on the hung database returned after %v (UnitTimeout 300ms)", time.Since(began).Round(time.Millisecond))
			var e *engine.Error
			if !errors.As(err, &e) || e.Code != engine.EUNAVAILABLE || !strings.Contains(e.Message, "nothing was changed") {
				t.Fatalf("track on a hung database: %v, want EUNAVAILABLE saying nothing was changed", err)
			}
			if hung.cuts.Load() != 1 {
				t.Fatalf("the proxy hung %d connections, want 1", hung.cuts.Load())
			}
			began = time.Now()
			res, err := n.eng.Meter.Track(ctx, tenant, in, nil)
			if err != nil {
				t.Fatalf("track once the database answers again: %v", err)
			}
			t.Logf("the next call took %v", time.Since(began).Round(time.Millisecond))
			if res.Usage.Count != 2 {
				t.Errorf("count = %d, want 2: the abandoned call counted nothing", res.Usage.Count)
			}
			hung.close() // the hung connection, before the node's pool waits on it
		})
	}
}

// A read made outside a unit of work (the engine's cache fills, lookups)
// on a database that stops answering is abandoned after
// Options.ReadTimeout with EUNAVAILABLE, instead of holding the call
// until the system's TCP timeout; the node reads again once the database
// answers.
func TestReadTimeoutOnHungDatabase(t *testing.T) {
	dbURL := pgtest.Database(t)
	direct := open(t, dbURL)
	hung, proxied := newCutter(t, dbURL)
	hung.hang.Store(true)
	s, err := postgres.Open(ctx, proxied+"&default_query_exec_mode=exec", &postgres.Options{ReadTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	live := engine.Tenant{PlatformID: "plt_a"}
	if _, err := direct.Update(ctx, nil, func(tx engine.Tx) (any, error) {
		tx.PutCustomer(live, &engine.Customer{ID: "cus_hung", Email: "hung@example.com"}, "")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Customer(ctx, live, "cus_hung"); err != nil {
		t.Fatal(err)
	}
	hung.arm("FROM customers")
	type answer struct {
		err  error
		took time.Duration
	}
	got := make(chan answer, 1)
	go func() {
		began := time.Now()
		_, err := s.Customer(ctx, live, "cus_hung")
		got <- answer{err, time.Since(began)}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(30 * time.Second): // generous: the read must end, not be fast
		hung.close()
		t.Fatal("a read on a hung database did not end within 30 s (ReadTimeout 300ms)")
	}
	t.Logf("the read on the hung database returned after %v (ReadTimeout 300ms)", a.took.Round(time.Millisecond))
	var e *engine.Error
	if !errors.As(a.err, &e) || e.Code != engine.EUNAVAILABLE {
		t.Fatalf("read on a hung database: %v, want EUNAVAILABLE", a.err)
	}
	if hung.cuts.Load() != 1 {
		t.Fatalf("the proxy hung %d connections, want 1", hung.cuts.Load())
	}
	if c, err := s.Customer(ctx, live, "cus_hung"); err != nil || c.Email != "hung@example.com" {
		t.Fatalf("read once the database answers again: %+v, %v", c, err)
	}
	hung.close()
}
