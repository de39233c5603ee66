package engine_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// sizedStore is a durable store whose platforms' stored bytes a test sets.
type sizedStore struct {
	*storage.Store
	bytes atomic.Int64
}

func (s *sizedStore) PlatformBytes(ctx context.Context, platformID string) (int64, error) {
	return s.bytes.Load(), nil
}

// TestStoredBytesQuotaOnPluginUpload: an upload that would take the
// platform's stored bytes past the quota is refused with EQUOTAEXCEEDED
// naming it, on top of the plugin byte budget, and stores nothing.
func TestStoredBytesQuotaOnPluginUpload(t *testing.T) {
	ctx := context.Background()
	rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sized := &sizedStore{Store: st}
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	wasm := readWasm(t, "builtin")
	eng := engine.New(engine.Config{Store: sized, PolicyLoader: rt.Loader(), Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
		Quotas: engine.Quotas{StoredBytes: 100_000}})
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Sized"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	sized.bytes.Store(100_000 - int64(len(wasm)) + 1)
	_, err = eng.Plugins.Upload(ctx, live, wasm, "", nil)
	if e := wantErr(t, "upload over the quota", err, engine.EQUOTAEXCEEDED); !strings.Contains(e.Message, "Stored bytes quota") {
		t.Fatalf("message %q does not name the quota", e.Message)
	}
	if vs, err := st.PluginVersions(ctx, live); err != nil || len(vs) != 0 {
		t.Fatalf("versions after a refused upload: %v %v", vs, err)
	}
	sized.bytes.Store(100_000 - int64(len(wasm)))
	clock.Add(time.Minute)
	if _, err := eng.Plugins.Upload(ctx, live, wasm, "", nil); err != nil {
		t.Fatalf("an upload that fits: %v", err)
	}
}

// TestQuotasOffByDefault: an engine configured with no quotas limits
// nothing; DefaultQuotas are the server's.
func TestQuotasOffByDefault(t *testing.T) {
	f := newStatsFixture(t, engine.Config{})
	for range 5000 {
		if err := f.eng.AllowRequest(f.np.Platform.ID); err != nil {
			t.Fatal(err)
		}
	}
	if q := engine.DefaultQuotas(); q.Customers != 1_000_000 || q.RPS != 1000 || q.StoredBytes != 1<<30 {
		t.Fatalf("DefaultQuotas %+v", q)
	}
}

// BenchmarkAllowRequest is the requests-per-second check every
// authenticated call pays, on one platform from every goroutine.
func BenchmarkAllowRequest(b *testing.B) {
	eng := engine.New(engine.Config{Quotas: engine.Quotas{RPS: 1e9, Burst: 1e9}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := eng.AllowRequest("plat_bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
