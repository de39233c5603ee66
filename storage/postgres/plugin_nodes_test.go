package postgres_test

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// A WASM policy that keeps state stays exact across nodes: counter.wasm
// adds one to a count in its state on every call, and after calls spread
// over two nodes the stored count is the number of calls. B loads the
// policy before any state exists, so it must not conclude that none ever
// will.
// Also as on CockroachDB: lock rows, SERIALIZABLE transactions retried.
func TestTwoNodesPluginState(t *testing.T) {
	t.Run("default", func(t *testing.T) { twoNodesPluginState(t, pgtest.Database(t), nil) })
	t.Run("serializable", func(t *testing.T) {
		twoNodesPluginState(t, pgtest.SerializableDatabase(t), &postgres.Options{LockRows: true})
	})
}

func twoNodesPluginState(t *testing.T, url string, opts *postgres.Options) {
	rt, err := plugins.New(ctx, &plugins.Options{Deadline: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	newPluginNode := func(name string) *node {
		s, err := postgres.Open(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &node{name: name, store: s, eng: engine.New(engine.Config{Store: s, PolicyLoader: rt.Loader(), Logger: slog.New(slog.DiscardHandler)})}
	}
	a, b := newPluginNode("A"), newPluginNode("B")
	np, err := a.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Stateful"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	cus, err := a.eng.Customers.Create(ctx, tenant, np.PublishableKey, engine.CreateCustomerInput{Email: "s@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join("..", "..", "testdata", "plugins", "counter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.eng.Plugins.Upload(ctx, tenant, wasm, "", nil); err != nil {
		t.Fatal(err)
	}
	one := int64(1)
	in := engine.TrackInput{CustomerID: cus.ID, Feature: "requests", Quantity: &one}
	eventually(t, "B runs the plugin uploaded on A", func() bool {
		r, err := b.eng.Meter.Check(ctx, tenant, in, nil) // loads it on B, writes nothing
		return err == nil && r.Plugin != nil
	})
	track := func(n *node) {
		t.Helper()
		r, err := n.eng.Meter.Track(ctx, tenant, in, nil)
		if err != nil || r.Plugin == nil || r.Plugin.Fallback {
			t.Fatalf("track on %s: %+v, %v", n.name, r, err)
		}
	}
	track(a)
	track(b)
	const perNode, each = 8, 10
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		for range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if r, err := n.eng.Meter.Track(ctx, tenant, in, nil); err != nil || r.Plugin == nil || r.Plugin.Fallback {
						t.Errorf("track on %s: %+v, %v", n.name, r, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	state, err := a.store.PolicyState(ctx, tenant, cus.ID, "requests")
	if err != nil || len(state) != 8 {
		t.Fatalf("stored state %v, %v", state, err)
	}
	if got, want := binary.LittleEndian.Uint64(state), uint64(2+2*perNode*each); got != want {
		t.Errorf("the plugin's count after %d calls on two nodes = %d", want, got)
	}
}
