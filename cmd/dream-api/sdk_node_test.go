package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSDKJS runs the JS SDK's tests (sdk/js/test, compiled against the
// package installed from its tarball) with node --test against the real
// program, with Stripe on stripe-mock. sdk/js/scripts/test.sh (make
// sdk-js-test) prepares the project and sets DREAM_SDK_JS_APP; without it
// the test skips.
func TestSDKJS(t *testing.T) {
	app := os.Getenv("DREAM_SDK_JS_APP")
	if app == "" {
		t.Skip("DREAM_SDK_JS_APP is not set: run `make sdk-js-test`")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	// Webhook endpoints on loopback (sdk.test.ts's receiver).
	ts, _ := stripeServer(t, map[string]string{"DREAM_WEBHOOK_ALLOW_PRIVATE": "1"})
	files, _ := filepath.Glob(filepath.Join(app, "out", "*.test.js"))
	cjs, _ := filepath.Glob(filepath.Join(app, "*.test.cjs"))
	files = append(files, cjs...)
	if len(files) < 5 {
		t.Fatalf("%d test files in %s", len(files), app)
	}
	plugins, err := filepath.Abs(filepath.Join("..", "..", "testdata", "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, append([]string{"--test"}, files...)...)
	cmd.Dir = app
	cmd.Env = append(os.Environ(),
		"DREAM_API_URL="+ts.URL,
		"DREAM_ADMIN_TOKEN="+ts.AdminToken,
		"DREAM_TEST_STRIPE_KEY="+stripePlatformKey,
		"DREAM_TEST_STRIPE_WEBHOOK_SECRET="+stripePlatformSecret,
		"DREAM_PLUGINS_DIR="+plugins,
		"DREAM_SECRET_KEY=", // the tests set it where they mean to
	)
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("node --test:\n%s", out)
	}
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
}
