package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// adminFlags are the flags the admin subcommands share.
type adminFlags struct {
	server string
	data   string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.server, "server", "http://"+envOr("DREAM_ADDR", "127.0.0.1:8787"), "URL of a running server")
	fs.StringVar(&a.data, "data", envOr("DREAM_DATA_DIR", "./data"), "data directory, opened when no server answers (it must exist)")
}

// adminEnv are the environment variables the admin subcommands read.
var adminEnv = []envVar{
	{"DREAM_ADMIN_TOKEN", "the admin token of the running server (required when one answers)"},
	{"DREAM_ADDR", "default of --server: http://$DREAM_ADDR"},
	{"DREAM_DATA_DIR", "default of --data"},
}

// envOr returns the environment variable k, or def when it is empty.
func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// envVar is an environment variable a subcommand reads, for its --help.
type envVar struct{ name, about string }

// parseArgs parses args with fs, flags before, between and after the
// positional arguments (`backup DIR --server URL`), and returns the
// positional ones; "--" ends the flags. -h/--help writes the subcommand's
// usage, flags and environment variables to stdout and returns
// flag.ErrHelp, which the program answers with exit status 0.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer, usage, about string, env []envVar) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, fs, usage, about, env)
			return nil, err
		} else if err != nil {
			return nil, fmt.Errorf("%w (see dream-api %s --help)", err, fs.Name())
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// printHelp writes a subcommand's usage, flags and environment variables.
func printHelp(w io.Writer, fs *flag.FlagSet, usage, about string, env []envVar) {
	fmt.Fprintf(w, "usage: %s\n\n", usage)
	if about != "" {
		fmt.Fprintf(w, "%s\n\n", about)
	}
	fmt.Fprintln(w, "flags:")
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n        %s", f.Name, name, text)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	if len(env) > 0 {
		fmt.Fprintln(w, "\nenvironment (flags win):")
		for _, e := range env {
			fmt.Fprintf(w, "  %-26s %s\n", e.name, e.about)
		}
	}
}

// serverUp reports whether a dream-api answers at url.
func serverUp(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(url, "/")+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// adminCall posts body to a running server's admin API.
func adminCall(ctx context.Context, url, path string, body any, out any) error {
	token := os.Getenv("DREAM_ADMIN_TOKEN")
	if token == "" {
		return errors.New("a server is running: set DREAM_ADMIN_TOKEN to use its admin API")
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(url, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("server answered %s: %s", resp.Status, bytes.TrimSpace(rb))
	}
	return json.Unmarshal(rb, out)
}

// openLocal opens an existing data dir directly, for when no server
// answers: it never creates one. It holds the data dir's lock; the caller
// MUST call the returned close.
// throughAdmin makes something through the admin API at path of the server
// at --server when one answers, else with an engine on the data dir itself.
func throughAdmin[Out any](ctx context.Context, a *adminFlags, path string, in any, local func(*engine.Engine) (*Out, error)) (Out, error) {
	var out Out
	if serverUp(ctx, a.server) {
		err := adminCall(ctx, a.server, path, in, &out)
		return out, err
	}
	st, closeLocal, err := openLocal(a.data, false)
	if err != nil {
		return out, err
	}
	defer closeLocal()
	made, err := local(engine.New(engine.Config{Store: st}))
	if err != nil {
		return out, err
	}
	return *made, nil
}

func openLocal(dir string, needStore bool) (*storage.Store, func(), error) {
	if err := existingDataDir(dir, needStore); err != nil {
		return nil, nil, fmt.Errorf("no server answered, and %w", err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("no server answered, and %w", err)
	}
	st, err := storage.Open(filepath.Join(dir, storeDirName), nil)
	if err != nil {
		lock.Release()
		return nil, nil, fmt.Errorf("no server answered, and the data dir could not be opened: %w", err)
	}
	return st, func() { st.Close(); lock.Release() }, nil
}

func platformCreate(ctx context.Context, args []string, stdout io.Writer) error {
	var a adminFlags
	var in engine.CreatePlatformInput
	fs := flag.NewFlagSet("platform create", flag.ContinueOnError)
	a.register(fs)
	fs.StringVar(&in.Name, "name", "", "platform name (required)")
	fs.StringVar(&in.Email, "email", "", "developer's email")
	pos, err := parseArgs(fs, args, stdout, "dream-api platform create --name N [--email E] [--server URL] [--data DIR]",
		"Creates a platform and prints {platformId, publishableKey, secretKey, test} as JSON (the secrets\n"+
			"are shown once): through the admin API of the server at --server when one answers, else by\n"+
			"opening the data dir --data itself (which must exist; stop the server first).", adminEnv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments: %s (see dream-api platform create --help)", strings.Join(pos, " "))
	}
	if in.Name == "" {
		return errors.New("--name is required")
	}
	np, err := throughAdmin(ctx, &a, "/admin/platforms", in, func(eng *engine.Engine) (*engine.NewPlatform, error) {
		return eng.Platforms.Create(ctx, in, nil)
	})
	if err != nil {
		return err
	}
	out := map[string]any{
		"platformId": np.Platform.ID, "publishableKey": np.PublishableKey, "secretKey": np.SecretKey,
		"test": np.Test,
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// backup is `dream-api backup DIR`. With a server answering at --server,
// the server writes the backup into its backup directory (--backup-dir):
// DIR is a name inside it, or an absolute path inside it, and the path the
// server wrote is printed. Without one, the CLI opens the data dir itself
// and writes DIR, wherever it is.
func backup(ctx context.Context, args []string, stdout io.Writer) error {
	var a adminFlags
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	a.register(fs)
	pos, err := parseArgs(fs, args, stdout, "dream-api backup DIR [--server URL] [--data DIR]",
		"Writes a backup into the new directory DIR: a consistent checkpoint of the store, and the\n"+
			"master key unless it comes from DREAM_MASTER_KEY (then keep that key: a restore needs it).\n"+
			"With a server answering at --server, the server writes it into its backup directory\n"+
			"(serve --backup-dir): DIR is a name inside that directory. Without a server, the data dir\n"+
			"--data (which must exist) is opened and DIR is written as given.\n"+
			"Restore with: dream-api restore DIR --data NEWDIR",
		append(adminEnv, envVar{"DREAM_MASTER_KEY", "without a server: the master key, when it is not in the data dir (not copied into the backup)"}))
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: dream-api backup DIR [--server URL] (see dream-api backup --help)")
	}
	var path string
	var keyIncluded bool
	if serverUp(ctx, a.server) {
		var out struct {
			Dir       string `json:"dir"`
			MasterKey string `json:"masterKey"`
		}
		if err := adminCall(ctx, a.server, "/admin/backup", map[string]string{"dir": pos[0]}, &out); err != nil {
			return err
		}
		path, keyIncluded = out.Dir, out.MasterKey == "included"
	} else {
		if path, err = filepath.Abs(pos[0]); err != nil {
			return err
		}
		st, closeLocal, err := openLocal(a.data, true)
		if err != nil {
			return err
		}
		defer closeLocal()
		key, fromEnv, err := dataDirMasterKey(a.data, os.Getenv("DREAM_MASTER_KEY"), false, nil)
		if err != nil {
			return err
		}
		keyIncluded = key != nil && !fromEnv
		if err := writeBackup(st, path, key, keyIncluded); err != nil {
			return err
		}
		if key == nil {
			fmt.Fprintf(stdout, "backup written to %s\nThe data dir has no master key yet (no server has started on it), so neither has the backup.\n", path)
			return nil
		}
	}
	fmt.Fprintf(stdout, "backup written to %s\n%s\nRestore it with: dream-api restore %s --data NEWDIR\n", path, masterKeyNote(keyIncluded), path)
	return nil
}
