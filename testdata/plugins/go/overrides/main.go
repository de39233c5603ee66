// Command overrides is an example limit policy: a call's metadata may carry
// per-customer limits that replace the tier's, e.g.
//
//	{"limits": {"requests": 50000, "exports": -1}}
//
// (-1 is unlimited). Without an override for the feature, the built-in
// limits decide. The limit in force is reported to the caller.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o overrides.wasm .
package main

import (
	"encoding/json"

	"github.com/dream-api/dream-api/plugins/pdk"
)

func init() { pdk.Handle(decide) }

func main() {}

type metadata struct {
	Limits map[string]int64 `json:"limits"`
}

func decide(in pdk.Input) pdk.Decision {
	if len(in.Metadata) == 0 {
		return in.Builtin()
	}
	var md metadata
	if err := json.Unmarshal(in.Metadata, &md); err != nil {
		pdk.Log("overrides: metadata is not JSON: " + err.Error())
		return in.Builtin()
	}
	limit, ok := md.Limits[in.Feature]
	if !ok {
		return in.Builtin()
	}
	pdk.Logf("overrides: %s has limit %d for %s", in.CustomerID, limit, in.Feature)
	in.Limit = limit
	return in.Builtin().WithLimit(limit)
}
