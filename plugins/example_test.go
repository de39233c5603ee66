package plugins_test

import (
	"context"
	"fmt"
	"os"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
)

func Example() {
	ctx := context.Background()
	r, err := plugins.New(ctx, nil) // default limits
	if err != nil {
		panic(err)
	}
	defer r.Close(ctx)

	wasm, err := os.ReadFile("../testdata/plugins/weighted.wasm")
	if err != nil {
		panic(err)
	}
	m, err := r.Load(ctx, wasm) // validates, compiles, self-tests
	if err != nil {
		panic(err) // a *plugins.ValidationError says why
	}
	defer m.Close(ctx)

	var p engine.Policy = m
	var out engine.Decision
	for _, feature := range []string{"requests", "exports"} {
		in := &engine.PolicyInput{Used: 0, Limit: 15, Quantity: 2, Plan: "free", Feature: feature}
		if err := p.Decide(ctx, in, &out); err != nil {
			panic(err) // a *plugins.PluginError
		}
		fmt.Printf("%s: allowed %v, cost %d, %q\n", feature, out.Allowed, out.Cost, out.Message)
	}
	// Output:
	// requests: allowed true, cost 2, ""
	// exports: allowed false, cost 20, "Please upgrade to unlock more exports"
}
