package main

// Starting and stopping the processes under test: the dream-api binary,
// the baseline servers (this program's own subcommands), redis-server and
// PostgreSQL. Every one listens on loopback, keeps its data under the run's
// temporary directory and dies with this process (Pdeathsig).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// proc is a child process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   string // path of its output
	// stopSig is the signal that stops it gracefully.
	stopSig os.Signal
	done    chan struct{}
	err     error
}

// start runs cmd with its output in logPath. lineFn, when set, sees every
// line the process writes to stdout or stderr until it returns true.
func start(name string, cmd *exec.Cmd, logPath string, lineFn func(string) bool) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &proc{name: name, cmd: cmd, log: logPath, stopSig: syscall.SIGTERM, done: make(chan struct{})}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var once sync.Once
	matched := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		watching := lineFn != nil
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if watching && lineFn(sc.Text()) {
				watching = false
				once.Do(func() { close(matched) })
			}
		}
		io.Copy(logf, pr)
		logf.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	if lineFn != nil {
		select {
		case <-matched:
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready (%v); its log:\n%s", name, p.err, tail(logPath))
		case <-time.After(60 * time.Second):
			p.kill()
			return nil, fmt.Errorf("%s was not ready within 60 s; its log:\n%s", name, tail(logPath))
		}
	}
	return p, nil
}

// stop stops the process gracefully, and kills it after 15 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	p.stdin.Close()
	p.cmd.Process.Signal(p.stopSig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startBaseline runs this program's serve-KIND subcommand and returns its
// address.
func startBaseline(dir, kind string, args ...string) (*proc, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	var addr string
	cmd := exec.Command(exe, append([]string{"serve-" + kind}, args...)...)
	p, err := start("baseline "+kind, cmd, filepath.Join(dir, "baseline-"+kind+".log"), func(line string) bool {
		a, ok := strings.CutPrefix(line, "LISTEN ")
		addr = a
		return ok
	})
	return p, addr, err
}

// dreamAPIBinary returns bin when set, else ./cmd/dream-api of the module in
// src built into dir (once: a binary already there is used).
func dreamAPIBinary(bin, src, dir string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if built := filepath.Join(dir, "dream-api"); fileExists(built) {
		return built, nil
	}
	return buildDreamAPI(src, dir)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// buildDreamAPI builds ./cmd/dream-api of the module in src into dir.
func buildDreamAPI(src, dir string) (string, error) {
	bin := filepath.Join(dir, "dream-api")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/dream-api")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/dream-api in %s: %v\n%s", src, err, out)
	}
	return bin, nil
}

// startDreamAPI runs `dream-api serve` on a fresh data dir and returns its
// address, read from its "serving" log line.
func startDreamAPI(bin, dir, adminToken string) (*proc, string, error) {
	return startDreamAPINode("dream-api", bin, filepath.Join(dir, "dream-data"), filepath.Join(dir, "dream-api.log"), adminToken)
}

// startDreamAPINode runs `dream-api serve` on the data dir data, with
// env added to this process's environment, logging into logPath.
func startDreamAPINode(name, bin, data, logPath, adminToken string, env ...string) (*proc, string, error) {
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data)
	// The benchmark measures one platform's throughput, far beyond the
	// default per-platform quotas (1 000 calls per second): none apply.
	cmd.Env = append(os.Environ(), "DREAM_ADMIN_TOKEN="+adminToken, "DREAM_ACCESS_LOG=0",
		"DREAM_QUOTA_RPS=0", "DREAM_QUOTA_CUSTOMERS=0", "DREAM_QUOTA_STORED_BYTES=0")
	cmd.Env = append(cmd.Env, env...)
	var addr string
	p, err := start(name, cmd, logPath, func(line string) bool {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" && l.Addr != "" {
			addr = l.Addr
			return true
		}
		return false
	})
	return p, addr, err
}

// startRedis runs redis-server on a free loopback port with every write
// fsynced before it is answered (appendonly, appendfsync always).
func startRedis(dir string) (*proc, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", errNotInstalled
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", rdir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
		"--protected-mode", "yes", "--maxclients", "1000")
	p, err := start("redis-server", cmd, filepath.Join(dir, "redis.log"), func(line string) bool {
		return strings.Contains(line, "Ready to accept connections")
	})
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := rdb.Ping(ctx).Err(); err == nil {
			break
		} else if ctx.Err() != nil {
			p.kill()
			return nil, "", fmt.Errorf("redis-server does not answer: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p, addr, nil
}

// errNotInstalled says a baseline's server is not on this machine.
var errNotInstalled = errors.New("not installed")

// postgresBin finds a PostgreSQL program: on PATH, else in Debian's
// /usr/lib/postgresql/<version>/bin (the newest).
func postgresBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(found) == 0 {
		return "", errNotInstalled
	}
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi < vj
	})
	return found[len(found)-1], nil
}

// startPostgres makes a cluster with initdb in dir and runs it on a free
// loopback port with synchronous_commit on. PostgreSQL refuses to run as
// root: then both run as the postgres user (Debian's package makes it).
func startPostgres(dir string) (*proc, string, error) {
	initdb, err := postgresBin("initdb")
	if err != nil {
		return nil, "", err
	}
	postgres, err := postgresBin("postgres")
	if err != nil {
		return nil, "", err
	}
	pgdir := filepath.Join(dir, "pg")
	data, sock := filepath.Join(pgdir, "data"), filepath.Join(pgdir, "sock")
	for _, d := range []string{pgdir, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, "", err
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, "", fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{pgdir, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, "", err
			}
		}
		// The run's own logs stay root's; the postgres user only needs to
		// pass through dir.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, "", err
		}
	}
	asPG := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = pgdir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		return cmd
	}
	if out, err := asPG(exec.Command(initdb, "-D", data, "-U", "bench", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync")).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := asPG(exec.Command(postgres, "-D", data, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on",
		"-c", "max_connections=300", "-c", "shared_buffers=128MB", "-c", "logging_collector=off"))
	p, err := start("postgres", cmd, filepath.Join(dir, "postgres.log"), func(line string) bool {
		return strings.Contains(line, "ready to accept connections")
	})
	if err != nil {
		return nil, "", err
	}
	p.stopSig = syscall.SIGINT // fast shutdown
	url := fmt.Sprintf("postgres://bench@127.0.0.1:%d/postgres?sslmode=disable", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
			break
		} else if ctx.Err() != nil {
			p.kill()
			return nil, "", fmt.Errorf("postgres does not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p, url, nil
}

// workDir makes the temporary directory of a run (data and logs) and
// returns the function that removes it, which does nothing with keep (the
// directory's path is then written to out).
func workDir(prefix string, keep bool, out io.Writer) (string, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		fmt.Fprintf(out, "data and logs: %s\n", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
