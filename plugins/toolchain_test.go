package plugins

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestGoToolchainBuild builds Go PDK examples with the real toolchain
// (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared) and runs them.
func TestGoToolchainBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm with the Go toolchain")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	r := newRuntime(t, nil)
	dir := t.TempDir()
	for _, name := range []string{"weekend", "hostile"} {
		out := filepath.Join(dir, name+".wasm")
		cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/plugins/go/"+name)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, b)
		}
		wasm, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wasm, wasmFile(t, "go/"+name)) {
			t.Logf("testdata/plugins/go/%s/%s.wasm differs from a fresh build (another Go version, or stale: run testdata/plugins/build.sh go)", name, name)
		}
		m, err := r.Load(context.Background(), wasm)
		if err != nil {
			t.Fatalf("Load(%s): %v", name, err)
		}
		t.Cleanup(func() { m.Close(context.Background()) })
		sat := call("requests", 120, 100, 1)
		sat.Now = saturday
		d := decide(t, m, sat)
		want := name == "weekend" // hostile decides like the built-in limits
		if d.Allowed != want {
			t.Errorf("%s on a Saturday over the limit: got %+v", name, d)
		}
	}
}
