package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPluginRetain(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	vs := func(sizes ...int) []*PluginVersion { // v0 oldest
		var out []*PluginVersion
		for i, s := range sizes {
			out = append(out, &PluginVersion{Version: fmt.Sprintf("v%d", i), Size: s, UploadedAt: t0.Add(time.Duration(i) * time.Minute)})
		}
		return out
	}
	added := &PluginVersion{Version: "new", Size: 10, UploadedAt: t0.Add(time.Hour)}
	tests := []struct {
		name     string
		limits   PluginLimits
		vs       []*PluginVersion
		added    *PluginVersion
		active   string
		drop     string
		quotaErr bool
	}{
		{"under the count", PluginLimits{Versions: 3, StorageBytes: 100}, vs(10), added, "new", "", false},
		{"oldest beyond the count", PluginLimits{Versions: 3, StorageBytes: 100}, vs(10, 10, 10, 10), added, "new", "v1,v0", false},
		{"the active one is kept even if older", PluginLimits{Versions: 3, StorageBytes: 100}, vs(10, 10, 10, 10), nil, "v0", "v1", false},
		{"oldest beyond the budget", PluginLimits{Versions: 10, StorageBytes: 35}, vs(10, 10, 10), added, "new", "v0", false},
		{"a big one goes, smaller older ones stay", PluginLimits{Versions: 10, StorageBytes: 35}, vs(5, 5, 30), added, "new", "v2", false},
		{"active and added over the budget", PluginLimits{Versions: 10, StorageBytes: 15}, vs(10), added, "v0", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			drop, err := tc.limits.retain(tc.vs, tc.added, tc.active)
			if tc.quotaErr {
				if ErrorCode(err) != EQUOTAEXCEEDED {
					t.Fatalf("got %v, %v; want quota_exceeded", drop, err)
				}
				return
			}
			if err != nil || strings.Join(drop, ",") != tc.drop {
				t.Errorf("drop %v, %v; want %q", drop, err, tc.drop)
			}
		})
	}
}

func TestTokenBuckets(t *testing.T) {
	var tb tokenBuckets
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		if w := tb.take("a", 10, t0); w != 0 {
			t.Fatalf("take %d: wait %d", i, w)
		}
	}
	if w := tb.take("a", 10, t0); w != 6 {
		t.Errorf("empty bucket: wait %d, want 6", w)
	}
	if w := tb.take("b", 10, t0); w != 0 {
		t.Errorf("another key: wait %d", w)
	}
	if w := tb.take("a", 10, t0.Add(3*time.Second)); w != 3 {
		t.Errorf("half a token back: wait %d, want 3", w)
	}
	if w := tb.take("a", 10, t0.Add(6*time.Second)); w != 0 {
		t.Errorf("a token back: wait %d", w)
	}
	// A long pause refills to the burst, no more.
	t1 := t0.Add(time.Hour)
	for i := range 10 {
		if w := tb.take("a", 10, t1); w != 0 {
			t.Fatalf("after an hour, take %d: wait %d", i, w)
		}
	}
	if w := tb.take("a", 10, t1); w == 0 {
		t.Error("the bucket held more than its burst")
	}
}
