package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	dream "github.com/dream-api/dream-api/sdk/go"
)

// pluginUsage is the usage of `dream-api plugin`.
const pluginUsage = `usage:
  dream-api plugin push FILE.wasm [--on-error builtin|deny]   upload a limit policy; it becomes active
  dream-api plugin dry-run [--version V] [--input JSON]        run it on an input, counting nothing
  dream-api plugin rollback VERSION                            re-activate an earlier version
  dream-api plugin status                                      the active version and the history

Every command takes --key (default $DREAM_SECRET_KEY) and --server (default
$DREAM_API_URL, else http://127.0.0.1:8787) and prints the server's answer as JSON.`

// pluginCLIEnv are the environment variables of the plugin subcommands.
var pluginCLIEnv = []envVar{
	{"DREAM_SECRET_KEY", "default of --key: the platform's secret key (sk_live_… or sk_test_…)"},
	{"DREAM_API_URL", "default of --server"},
}

// pluginCommand runs `dream-api plugin SUB …` through the Go client
// (sdk/go) against a running server, printing JSON answers to stdout.
func pluginCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(stdout, pluginUsage)
		if len(args) == 0 {
			return errors.New("dream-api plugin: a subcommand is required (push, dry-run, rollback, status)")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("plugin "+sub, flag.ContinueOnError)
	key := fs.String("key", os.Getenv("DREAM_SECRET_KEY"), "the platform's secret key")
	server := fs.String("server", envOr("DREAM_API_URL", dream.DefaultBaseURL), "URL of the server")
	var (
		onError, version, input string
		usage, about            string
		npos                    int
	)
	switch sub {
	case "push":
		fs.StringVar(&onError, "on-error", "", "what decides when the plugin fails: builtin (the server's default) or deny")
		usage, about, npos = "dream-api plugin push FILE.wasm [--on-error builtin|deny]", "Uploads a WASM limit policy; validated, it becomes the active version.", 1
	case "dry-run":
		fs.StringVar(&version, "version", "", "the version to run (default: the active one)")
		fs.StringVar(&input, "input", "", `the input as JSON, e.g. {"plan":"free","usage":99,"quantity":1}`)
		usage, about = "dream-api plugin dry-run [--version V] [--input JSON]", "Runs the plugin on an input; nothing is counted."
	case "rollback":
		usage, about, npos = "dream-api plugin rollback VERSION", "Re-activates an earlier version (plg_…).", 1
	case "status":
		usage, about = "dream-api plugin status", "Prints the active version, onError and every uploaded version."
	default:
		return fmt.Errorf("unknown plugin command %q (push, dry-run, rollback, status; see dream-api plugin --help)", sub)
	}
	pos, err := parseArgs(fs, args, stdout, usage, about, pluginCLIEnv)
	if err != nil {
		return err
	}
	if len(pos) != npos {
		return fmt.Errorf("usage: %s", usage)
	}
	if strings.TrimSpace(*key) == "" {
		return errors.New("no secret key: pass --key or set DREAM_SECRET_KEY")
	}
	c := dream.New(dream.Options{SecretKey: *key, BaseURL: *server})
	var out any
	switch sub {
	case "push":
		if onError != "" && onError != "builtin" && onError != "deny" {
			return fmt.Errorf("--on-error must be builtin or deny, not %q", onError)
		}
		wasm, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		out, err = c.Plugin.Upload(ctx, wasm, &dream.PluginUploadOptions{OnError: onError})
		if err != nil {
			return err
		}
	case "dry-run":
		p := dream.DryRunParams{Version: version}
		if input != "" {
			d := json.NewDecoder(strings.NewReader(input))
			d.DisallowUnknownFields()
			if err := d.Decode(&p); err != nil {
				return fmt.Errorf("--input: %w (fields: plan, feature, quantity, usage, limit, customerId, metadata, state)", err)
			}
			p.Version = version
		}
		out, err = c.Plugin.DryRun(ctx, p)
		if err != nil {
			return err
		}
	case "rollback":
		out, err = c.Plugin.Rollback(ctx, pos[0])
		if err != nil {
			return err
		}
	case "status":
		out, err = c.Plugin.Get(ctx)
		if err != nil {
			return err
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err = stdout.Write(b.Bytes())
	return err
}
