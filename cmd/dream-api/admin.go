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
	addr := os.Getenv("DREAM_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8787"
	}
	data := os.Getenv("DREAM_DATA_DIR")
	if data == "" {
		data = "./data"
	}
	fs.StringVar(&a.server, "server", "http://"+addr, "URL of a running server")
	fs.StringVar(&a.data, "data", data, "data directory, used when no server answers")
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

// openLocal opens the data dir directly, for when no server runs.
func openLocal(dir string) (*storage.Store, *engine.Engine, error) {
	st, err := storage.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("no server answered and the data dir could not be opened: %w", err)
	}
	return st, engine.New(engine.Config{Store: st}), nil
}

func platformCreate(ctx context.Context, args []string, stdout io.Writer) error {
	var a adminFlags
	var in engine.CreatePlatformInput
	fs := flag.NewFlagSet("platform create", flag.ContinueOnError)
	a.register(fs)
	fs.StringVar(&in.Name, "name", "", "platform name (required)")
	fs.StringVar(&in.Email, "email", "", "developer's email")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if in.Name == "" {
		return errors.New("--name is required")
	}
	var np engine.NewPlatform
	if serverUp(ctx, a.server) {
		if err := adminCall(ctx, a.server, "/admin/platforms", in, &np); err != nil {
			return err
		}
	} else {
		st, eng, err := openLocal(a.data)
		if err != nil {
			return err
		}
		defer st.Close()
		p, err := eng.Platforms.Create(ctx, in, nil)
		if err != nil {
			return err
		}
		np = *p
	}
	out := map[string]any{
		"platformId": np.Platform.ID, "publishableKey": np.PublishableKey, "secretKey": np.SecretKey,
		"test": np.Test,
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func backup(ctx context.Context, args []string, stdout io.Writer) error {
	var a adminFlags
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	a.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: dream-api backup DIR")
	}
	dir, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	if serverUp(ctx, a.server) {
		var out map[string]any
		if err := adminCall(ctx, a.server, "/admin/backup", map[string]string{"dir": dir}, &out); err != nil {
			return err
		}
	} else {
		st, _, err := openLocal(a.data)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Checkpoint(dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "backup written to %s\n", dir)
	return nil
}
