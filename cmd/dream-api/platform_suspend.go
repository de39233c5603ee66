package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// platformAnswer is the answer of POST /admin/platforms/{id}/suspend|resume.
type platformAnswer struct {
	Platform *engine.Platform `json:"platform"`
}

// platformSuspend is `dream-api platform suspend ID [--reason R]` and
// `dream-api platform resume ID` (verb): through the admin API of a running
// server, else with an engine on the data dir. It prints the platform.
func platformSuspend(ctx context.Context, verb string, args []string, stdout io.Writer) error {
	var a adminFlags
	var in engine.SuspendInput
	fs := flag.NewFlagSet("platform "+verb, flag.ContinueOnError)
	a.register(fs)
	usage, about := "dream-api platform resume ID [--server URL] [--data DIR]",
		"Ends a platform's suspension: its keys work again at once. Prints {\"platform\":{…}} as JSON."
	if verb == "suspend" {
		fs.StringVar(&in.Reason, "reason", "", "the operator's note, shown to the developer (optional)")
		usage, about = "dream-api platform suspend ID [--reason R] [--server URL] [--data DIR]",
			"Suspends a platform: every request with one of its keys is refused (403 forbidden) until it is\n"+
				"resumed; its Stripe webhooks still apply. Prints {\"platform\":{…}} as JSON."
	}
	about += "\nThrough the admin API of the server at --server when one answers, else by opening the data\ndir --data itself (which must exist; stop the server first)."
	pos, err := parseArgs(fs, args, stdout, usage, about, adminEnv)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: %s", usage)
	}
	id := pos[0]
	var body any = struct{}{}
	if verb == "suspend" {
		body = in
	}
	res, err := throughAdmin(ctx, &a, "/admin/platforms/"+url.PathEscape(id)+"/"+verb, body, func(eng *engine.Engine) (*platformAnswer, error) {
		var p *engine.Platform
		var err error
		if verb == "suspend" {
			p, err = eng.Platforms.Suspend(ctx, id, in, nil)
		} else {
			p, err = eng.Platforms.Resume(ctx, id, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("%s", strings.TrimSuffix(engine.ErrorMessage(err), "."))
		}
		return &platformAnswer{Platform: p}, nil
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
