// Package reference runs the embedded reference appliance: the SLM-Copilot front door
// (the appliance's own frontdoor.sh and nginx site, rendered the appliance's way and
// served by Debian's nginx) in front of a real llama.cpp engine serving a tiny
// random-weight model, all on loopback.
//
// It lets the acceptance suite certify a real stack on machines without a VM, and lets
// project tests break one property of a throw-away instance (Options.Tamper) to prove
// that the matching acceptance check fails.
package reference

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	slmcopilot "github.com/slm-copilot/slm-copilot/appliances/slm-copilot"
	"github.com/slm-copilot/slm-copilot/fixtures/gguf"
)

const (
	// DefaultModel is the model id the appliance serves.
	DefaultModel = "devstral-small-2"
	// Username is the HTTP Basic user of the appliance.
	Username = "copilot"
	// LlamaServerEnv overrides where llama-server is found (default: CacheDir's, from `make deps`).
	LlamaServerEnv = "SLM_COPILOT_LLAMA_SERVER"
	// CacheEnv overrides DefaultCacheDir, as for fixtures/deps.sh.
	CacheEnv = "SLM_COPILOT_CACHE"
	// DefaultCacheDir keeps downloads and tool builds outside the repository.
	DefaultCacheDir = "/var/cache/slm-copilot"

	// DefaultAnswerTokens is how long the engine's answer is when a request sets no max_tokens.
	DefaultAnswerTokens = 16

	dirPrefix    = "slm-copilot-ref-"
	startRetries = 3
)

// Options configure one instance. The zero value is a correct appliance.
type Options struct {
	// Password for the front door; empty means a fresh random one.
	Password string
	// Model is the id the engine serves; empty means DefaultModel.
	Model string
	// Tamper runs after the front door is rendered and before anything starts.
	// Fault-injection tests use it to break exactly one property of a test instance.
	Tamper func(*Files) error
	// Log receives the engine's and nginx's output; nil discards it.
	Log io.Writer
	// Address is the loopback address the front door listens on (default 127.0.0.1);
	// the oned simulator gives each simulated VM its own, as a NIC would.
	Address string
	// StandardPorts serves HTTPS on 443 and HTTP on 80 as a VM does (needs root);
	// otherwise free ports are picked so instances can run side by side.
	StandardPorts bool
	// Context holds extra ONEAPP_* settings (KEY=VALUE) for the configure stage, as a
	// VM's context would give them; they override the reference's own.
	Context []string
	// Engine is what the front door talks to: llama-server itself (the default) or a relay
	// answering as LocalAI v4.9.0, the appliance's engine, in front of it (localai.go).
	Engine Engine
	// Dir is an existing instance directory to configure again (a reboot: the disk
	// persists, so the certificate does); it is created if missing. Start uses it instead
	// of a fresh temporary directory, clearing only what a reboot clears (run/ and tmp/)
	// and unpacking the appliance's files again, and Close leaves it in place. Empty means
	// a fresh directory, removed by Close.
	Dir string
}

// Files are what the appliance's configure stage wrote for one instance, below Dir (the
// sandbox's root), and how the engine is started.
type Files struct {
	Dir       string   // instance directory and configure's root, removed by Close unless Options.Dir
	Site      string   // the rendered nginx site (appliances/slm-copilot/site.conf.tmpl)
	Guard     string   // the context guard the site loads (appliances/slm-copilot/context-guard.js)
	Secrets   string   // nginx maps holding the Bearer check and the engine key
	Htpasswd  string   // HTTP Basic credentials
	Cert, Key string   // TLS material
	EngineKey string   // the key nginx presents to the engine
	Upstream  string   // where nginx's upstream points (SLM_ENGINE_ADDR): llama-server, or the LocalAI relay
	EngineEnv string   // the engine's environment file (LocalAI's settings on a VM)
	Ready     string   // the readiness marker /readyz and /health follow
	Model     string   // the GGUF the engine loads
	Engine    []string // llama-server arguments
	// Address and HTTPSPort are where the TLS listener is, for tamperings that rebuild a
	// listen line.
	Address   string
	HTTPSPort int
}

// Instance is a running reference appliance.
type Instance struct {
	Endpoint      string // https://ADDRESS:PORT (no port with StandardPorts)
	HTTPEndpoint  string // http://ADDRESS:PORT, where plain HTTP is served
	Username      string
	Password      string
	Model         string
	CACert        string // the self-signed certificate, which is its own CA
	EngineVersion string
	Engine        Engine
	Files         Files

	procs    []*process // engine first, then nginx
	keepDir  bool       // Files.Dir was Options.Dir: Close leaves it
	relays   localAIRelays
	llamaURL string // llama-server behind the LocalAI relay, and its key
	llamaKey string
}

// Start starts an instance and waits until its front door answers /readyz with 200.
// The caller must Close it. Ports are picked free, so instances can run side by side.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Password == "" {
		opts.Password = randomPassword()
	}
	if opts.Address == "" {
		opts.Address = "127.0.0.1"
	}
	if opts.Engine == "" {
		opts.Engine = EngineLlamaServer
	}
	llama, err := llamaServer()
	if err != nil {
		return nil, err
	}
	SweepStale()
	var lastErr error
	for attempt := 0; attempt < startRetries; attempt++ {
		in, err := start(ctx, opts, llama)
		if err == nil {
			return in, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || opts.StandardPorts || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errPortTaken = errors.New("port taken by another process")

func start(ctx context.Context, opts Options, llama string) (_ *Instance, err error) {
	dir, err := instanceDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("reference appliance: %w", err)
	}
	in := &Instance{Username: Username, Password: opts.Password, Model: opts.Model, Engine: opts.Engine, keepDir: opts.Dir != ""}
	in.Files.Dir = dir
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	// nginx's workers (www-data) must reach the credentials below this directory.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("reference appliance: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("reference appliance: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, fmt.Errorf("reference appliance: pick ports: %w", err)
	}
	// enginePort is where the front door's upstream points; llama-server listens there too
	// unless a LocalAI relay stands in front of it.
	enginePort, httpPort, httpsPort, llamaPort := ports[0], ports[1], ports[2], ports[0]
	if opts.Engine == EngineLocalAI {
		llamaPort = ports[3]
	}
	if opts.StandardPorts {
		httpPort, httpsPort = 80, 443
	}
	in.Endpoint = baseURL("https", opts.Address, httpsPort, 443)
	in.HTTPEndpoint = baseURL("http", opts.Address, httpPort, 80)
	if in.EngineVersion, err = engineVersion(llama); err != nil {
		return nil, err
	}
	if opts.Engine == EngineLocalAI {
		in.EngineVersion = "LocalAI " + localAIVersion + " relay over " + in.EngineVersion
	}
	if err := in.configureAppliance(ctx, opts, enginePort, httpPort, httpsPort); err != nil {
		return nil, err
	}
	in.CACert = in.Files.Cert
	if in.Files.Model, err = gguf.Ensure(modelDir(), gguf.DefaultSpec()); err != nil {
		return nil, fmt.Errorf("reference appliance: %w", err)
	}
	ctxSize, err := setting(in.Files.EngineEnv, "LOCALAI_CONTEXT_SIZE")
	if err != nil {
		return nil, fmt.Errorf("reference appliance: the engine's context: %w", err)
	}
	threads, err := setting(in.Files.EngineEnv, "LOCALAI_THREADS")
	if err != nil {
		return nil, fmt.Errorf("reference appliance: the engine's threads: %w", err)
	}
	in.Files.Engine = []string{
		"--model", in.Files.Model,
		"--alias", opts.Model,
		"--host", "127.0.0.1", "--port", strconv.Itoa(llamaPort),
		"--api-key-file", in.Files.EngineKey,
		// The context configure rendered for the engine, whole for each request as on the
		// appliance (LocalAI gives its one model the whole context_size); two slots share it.
		"--ctx-size", ctxSize, "--parallel", "2", "--kv-unified", "--threads", threads,
		// The random-weight model never samples its end of sequence: a request without
		// max_tokens (Cline sends none) ends after this many tokens, as a real model's answer ends.
		"--n-predict", strconv.Itoa(DefaultAnswerTokens),
		"--jinja", "--no-webui",
	}
	if opts.Engine == EngineLocalAI {
		if err := in.localAIEngineArgs(); err != nil {
			return nil, err
		}
	}
	if opts.Tamper != nil {
		if err := opts.Tamper(&in.Files); err != nil {
			return nil, fmt.Errorf("reference appliance: tamper: %w", err)
		}
	}
	if err := in.startEngine(ctx, llama, llamaPort, opts.Log); err != nil {
		return nil, err
	}
	if opts.Engine == EngineLocalAI {
		if err := in.startLocalAI(llamaPort); err != nil {
			return nil, err
		}
	}
	if err := in.markReady(ctx); err != nil {
		return nil, err
	}
	if err := in.startNginx(ctx, opts.Log, opts.Tamper == nil); err != nil {
		return nil, err
	}
	return in, nil
}

// instanceDir is a fresh temporary directory, or dir made ready to boot again: what a
// VM's reboot clears (its tmpfs /run and /tmp) is removed, and the appliance's own files
// are unpacked afresh (on a VM the image holds them), the rest is kept.
func instanceDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", dirPrefix)
	}
	for _, volatile := range []string{"run", "tmp", "appliance"} {
		if err := os.RemoveAll(filepath.Join(dir, volatile)); err != nil {
			return "", err
		}
	}
	return dir, os.MkdirAll(dir, 0o711)
}

// configureAppliance runs the appliance's own configure stage (appliance.sh) with the
// instance directory as its root, then writes the nginx main configuration that a VM's
// Debian nginx.conf would provide around the appliance's site.
func (in *Instance) configureAppliance(ctx context.Context, opts Options, enginePort, httpPort, httpsPort int) error {
	dir := in.Files.Dir
	mainConf, err := PrepareSandbox(dir)
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	nginxDir := filepath.Join(dir, "etc", "nginx", "slm-copilot")
	in.Files = Files{
		Dir:       dir,
		Site:      filepath.Join(dir, "etc", "nginx", "sites-available", "slm-copilot.conf"),
		Guard:     filepath.Join(nginxDir, "context-guard.js"),
		Secrets:   filepath.Join(nginxDir, "secrets.conf"),
		Htpasswd:  filepath.Join(nginxDir, "htpasswd"),
		Cert:      filepath.Join(nginxDir, "tls", "cert.pem"),
		Key:       filepath.Join(nginxDir, "tls", "key.pem"),
		EngineKey: filepath.Join(nginxDir, "engine.key"),
		Upstream:  fmt.Sprintf("127.0.0.1:%d", enginePort),
		EngineEnv: filepath.Join(dir, "etc", "slm-copilot", "local-ai.env"),
		Ready:     filepath.Join(dir, "run", "slm-copilot", "ready"),
		Address:   opts.Address,
		HTTPSPort: httpsPort,
	}
	// llama-server's paths; LocalAI's are appliance.sh's defaults.
	healthPath, tokenizePath := "/health", "/tokenize"
	if opts.Engine == EngineLocalAI {
		healthPath, tokenizePath = "/readyz", "/v1/tokenize"
	}
	env := append([]string{
		"SLM_HTTP_LISTEN=" + net.JoinHostPort(opts.Address, strconv.Itoa(httpPort)),
		"SLM_HTTPS_LISTEN=" + net.JoinHostPort(opts.Address, strconv.Itoa(httpsPort)),
		"SLM_ENGINE_ADDR=" + in.Files.Upstream,
		"SLM_ENGINE_HEALTH_PATH=" + healthPath,
		"SLM_ENGINE_TOKENIZE_PATH=" + tokenizePath,
		"SLM_ADDRESSES=" + opts.Address + " localhost",
		// One engine thread: instances run side by side on a few shared cores, where
		// ggml's threads, spinning while they wait for each other, slow generation tenfold.
		"ONEAPP_COPILOT_THREADS=1",
		"MODEL_ID=" + opts.Model, // the name LocalAI lists, from the model YAML configure writes
	}, opts.Context...)
	env = append(env, "ONEAPP_COPILOT_PASSWORD="+in.Password)
	cmd := ConfigureCommand(ctx, dir, mainConf, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("reference appliance: appliance.sh configure: %w: %s", err, in.redact(string(out)))
	}
	return nil
}

// setting reads NAME's value from an environment file configure wrote (NAME=VALUE lines),
// as the engine's service reads it.
func setting(file, name string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	value := ""
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			value = strings.TrimSpace(v)
		}
	}
	if value == "" {
		return "", fmt.Errorf("%s sets no %s", file, name)
	}
	return value, nil
}

// vmDirs are directories a VM's base system already has (mode 0755), so the stages, which
// run under umask 0077, do not create them root-only.
var vmDirs = []string{"etc/nginx/sites-available", "etc/nginx/sites-enabled", "etc/one-appliance",
	"var/lib", "var/log", "var/www", "run", "opt/local-ai/models", "usr/local/bin", "logs", "tmp"}

// PrepareSandbox makes root a place where appliance.sh's stages can run: the base
// directories of a VM, the appliance's files unpacked at root/appliance, and an nginx main
// configuration (returned) that stands for Debian's, including the sites the appliance
// enables below root.
func PrepareSandbox(root string) (mainConf string, err error) {
	if err := slmcopilot.Unpack(filepath.Join(root, "appliance")); err != nil {
		return "", err
	}
	for _, d := range vmDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	mainConf = filepath.Join(root, "nginx.conf")
	return mainConf, os.WriteFile(mainConf, []byte(mainConfText(root)), 0o644)
}

func mainConfText(root string) string {
	return fmt.Sprintf(`# Sandbox nginx.conf: what Debian's is on a VM; the site is the appliance's own.
daemon off;
worker_processes auto;
%s
load_module /usr/lib/nginx/modules/ngx_http_js_module.so;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log warn;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log %[2]s/logs/access.log;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[2]s/etc/nginx/sites-enabled/*.conf;
}
`, nginxUser(), root)
}

// ConfigureCommand runs appliance.sh's configure stage (unpacked at root/appliance) with root
// as its SLM_ROOT and mainConf as the nginx configuration it checks; env adds ONEAPP_* and
// layout variables.
func ConfigureCommand(ctx context.Context, root, mainConf string, env ...string) *exec.Cmd {
	return slmcopilot.Command(ctx, root, "service_configure", append([]string{"SLM_NGINX_CONF=" + mainConf}, env...))
}

// redact hides the password in output quoted in errors.
func (in *Instance) redact(s string) string {
	return strings.ReplaceAll(s, in.Password, "[REDACTED]")
}

// nginxUser runs workers as Debian's www-data, as on the appliance, when we are root.
func nginxUser() string {
	if os.Geteuid() == 0 {
		return "user www-data www-data;"
	}
	return ""
}

// waitHealthy waits until llama-server answers 200 on its health URL (503 while it loads).
func waitHealthy(ctx context.Context, proc *process, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return waitFor(ctx, proc, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (in *Instance) startEngine(ctx context.Context, llama string, port int, log io.Writer) error {
	cmd := exec.Command(llama, in.Files.Engine...)
	stderr := &limitedBuffer{max: 8192}
	proc, err := in.spawn(cmd, io.MultiWriter(log, stderr))
	if err != nil {
		return fmt.Errorf("reference appliance: start llama-server: %w", err)
	}
	err = waitHealthy(ctx, proc, fmt.Sprintf("http://127.0.0.1:%d/health", port))
	if err != nil {
		if strings.Contains(stderr.String(), "couldn't bind") {
			return fmt.Errorf("reference appliance: llama-server on port %d: %w", port, errPortTaken)
		}
		return fmt.Errorf("reference appliance: llama-server (%s) never became healthy: %w\n%s", in.EngineVersion, err, stderr.String())
	}
	return nil
}

// startNginx starts the front door and waits until it listens and, with requireReady,
// until its /readyz answers 200.
func (in *Instance) startNginx(ctx context.Context, log io.Writer, requireReady bool) error {
	args := []string{"-p", in.Files.Dir, "-c", filepath.Join(in.Files.Dir, "nginx.conf"), "-e", filepath.Join(in.Files.Dir, "logs", "error.log")}
	if out, err := exec.CommandContext(ctx, "nginx", append(args, "-t", "-q")...).CombinedOutput(); err != nil {
		return fmt.Errorf("reference appliance: nginx -t rejects the site: %w: %s", err, out)
	}
	proc, err := in.spawn(exec.Command("nginx", args...), log)
	if err != nil {
		return fmt.Errorf("reference appliance: start nginx: %w", err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(in.Files.Cert)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("reference appliance: read certificate %s: %v", in.Files.Cert, err)
	}
	// Readiness is checked at the TCP level first: a tampered instance may break TLS or /readyz on purpose.
	addr := net.JoinHostPort(in.Files.Address, strconv.Itoa(in.Files.HTTPSPort))
	err = waitFor(ctx, proc, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if err != nil {
		logText, _ := os.ReadFile(filepath.Join(in.Files.Dir, "logs", "error.log"))
		if bytes.Contains(logText, []byte("Address already in use")) {
			return fmt.Errorf("reference appliance: nginx: %w", errPortTaken)
		}
		return fmt.Errorf("reference appliance: nginx never listened on %s: %w\n%s", addr, err, logText)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	ready := func() bool {
		resp, err := client.Get(in.Endpoint + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !requireReady {
		// A tampered instance may never say ready on purpose: give it a bounded chance.
		readyCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = waitFor(readyCtx, proc, ready)
		return nil
	}
	if err := waitFor(ctx, proc, ready); err != nil {
		logText, _ := os.ReadFile(filepath.Join(in.Files.Dir, "logs", "error.log"))
		return fmt.Errorf("reference appliance: %s/readyz never answered 200: %w\n%s", in.Endpoint, err, logText)
	}
	return nil
}

// process is a child started in its own process group.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and was reaped
	once sync.Once     // stop signals the group at most once
}

// spawn starts cmd in its own process group, killed with us if we die first.
func (in *Instance) spawn(cmd *exec.Cmd, out io.Writer) (*process, error) {
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status only matters through done
		close(p.done)
	}()
	in.procs = append(in.procs, p)
	return p, nil
}

// stop asks the process group to stop and kills it if it has not within a few seconds.
// nginx's master waits for its workers, so its exit means the group is gone.
func (p *process) stop() {
	p.once.Do(func() {
		select {
		case <-p.done:
			// Reaped already (it crashed or was stopped): its group id may now belong to
			// another process group (pids are reused quickly), so it is not signalled.
			return
		default:
		}
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers that outlived their leader
	})
}

// waitFor polls ok until it returns true, p exits, or ctx ends.
func waitFor(ctx context.Context, p *process, ok func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return errors.New("process exited")
		case <-tick.C:
		}
	}
}

// Close stops every process of the instance (nginx's workers included) and removes its
// files, unless they are in Options.Dir.
func (in *Instance) Close() error {
	in.relays.closeAll()
	for i := len(in.procs) - 1; i >= 0; i-- {
		in.procs[i].stop()
	}
	in.procs = nil
	if in.Files.Dir == "" || in.keepDir {
		return nil
	}
	return os.RemoveAll(in.Files.Dir)
}

// SweepStale removes what instances of dead processes left behind (a test binary killed by
// a timeout cannot clean up; its nginx workers would keep their ports). Start calls it.
func SweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := readPid(filepath.Join(dir, "owner.pid"))
		if err != nil || syscall.Kill(owner, 0) == nil {
			continue
		}
		if pid, err := readPid(filepath.Join(dir, "nginx.pid")); err == nil {
			killStaleNginx(pid, dir)
		}
		_ = os.RemoveAll(dir)
	}
}

// killStaleNginx kills the processes of process group pgid that are the stale instance's
// nginx: its master (whose command line names dir) or its orphaned workers. The pid may
// have been reused since, so nothing else in the group is touched.
func killStaleNginx(pgid int, dir string) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, stat := range stats {
		b, err := os.ReadFile(stat)
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid pgrp ...
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) < 3 || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(stat), "cmdline"))
		cmd := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		if strings.Contains(cmd, dir) || (strings.HasPrefix(cmd, "nginx: worker process") && fields[1] == "1") {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(stat))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func llamaServer() (string, error) {
	path := os.Getenv(LlamaServerEnv)
	if path == "" {
		path = filepath.Join(CacheDir(), "llama.cpp", "current", "bin", "llama-server")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("reference appliance: llama-server not found at %s (%s): run `make deps` to install it: %w", path, LlamaServerEnv, err)
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		return "", fmt.Errorf("reference appliance: nginx not installed: run `make deps`: %w", err)
	}
	return path, nil
}

// engineVersion reads the VERSION file `make deps` writes next to llama-server's tree.
func engineVersion(llama string) (string, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(llama)), "VERSION"))
	if errors.Is(err, fs.ErrNotExist) {
		return "llama-server (version unknown)", nil
	}
	if err != nil {
		return "", fmt.Errorf("reference appliance: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CacheDir is where `make deps` installs tools ($SLM_COPILOT_CACHE, else DefaultCacheDir).
func CacheDir() string {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return dir
	}
	return DefaultCacheDir
}

// modelDir is where the fixture model is kept between runs: the project's cache when it
// is writable, else the user's cache directory.
func modelDir() string {
	models := filepath.Join(CacheDir(), "models")
	if os.MkdirAll(models, 0o755) == nil && syscall.Access(models, 2 /* W_OK */) == nil {
		return models
	}
	if user, err := os.UserCacheDir(); err == nil {
		return filepath.Join(user, "slm-copilot", "models")
	}
	return filepath.Join(os.TempDir(), "slm-copilot-models")
}

// baseURL is scheme://host[:port], the port left out when it is the scheme's own.
func baseURL(scheme, host string, port, schemePort int) string {
	if port == schemePort {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// limitedBuffer keeps the first max bytes written, enough to explain a failed start.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// StopEngine stops the engine but leaves the front door up, as when the engine crashes:
// like local-ai.service's ExecStopPost it removes the readiness marker. Tests use it to see
// health checks notice.
func (in *Instance) StopEngine() {
	in.relays.closeAll()
	if len(in.procs) > 0 {
		in.procs[0].stop()
	}
	_ = os.Remove(in.Files.Ready)
}

// markReady runs the appliance's slm-copilot-ready, as local-ai.service's ExecStartPost does:
// it marks the instance ready once the engine has answered a real completion.
func (in *Instance) markReady(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(in.Files.Dir, "appliance", "slm-copilot-ready"))
	cmd.Env = append(os.Environ(), "SLM_ENGINE_ENV="+in.Files.EngineEnv, "SLM_READY_MARKER="+in.Files.Ready, "SLM_READY_TIMEOUT=60")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("reference appliance: slm-copilot-ready: %w: %s", err, out)
	}
	return nil
}

// ExposeEngine starts a second engine serving the instance's model on host:port without a
// key, as an engine bound to a public address with no key would be. Fault tests use it to
// prove that the suite finds an engine reachable around the front door; Close stops it.
func (in *Instance) ExposeEngine(ctx context.Context, host string, port int) error {
	if in.Engine == EngineLocalAI {
		return in.exposeLocalAI(host, port)
	}
	llama, err := llamaServer()
	if err != nil {
		return err
	}
	var args []string
	for i := 0; i < len(in.Files.Engine); i++ {
		switch arg := in.Files.Engine[i]; arg {
		case "--host", "--port", "--api-key-file":
			i++ // dropped with its value, set below
		default:
			args = append(args, arg)
		}
	}
	args = append(args, "--host", host, "--port", strconv.Itoa(port))
	stderr := &limitedBuffer{max: 8192}
	proc, err := in.spawn(exec.Command(llama, args...), stderr)
	if err != nil {
		return fmt.Errorf("reference appliance: expose the engine: %w", err)
	}
	err = waitHealthy(ctx, proc, "http://"+net.JoinHostPort(host, strconv.Itoa(port))+"/health")
	if err != nil {
		return fmt.Errorf("reference appliance: exposed engine on %s:%d never became healthy: %w\n%s", host, port, err, stderr.String())
	}
	return nil
}

// SpareLoopback picks a loopback address other than 127.0.0.1 on which every given port is
// free, so an instance there can have fixed ports of its own (ExposeEngine's, say) beside
// instances on other addresses.
func SpareLoopback(ports ...int) (string, error) {
	for range 20 {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		addr := fmt.Sprintf("127.%d.%d.%d", 1+b[0]%254, b[1], 1+b[2]%254)
		free := true
		for _, port := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return addr, nil
		}
	}
	return "", errors.New("reference appliance: no loopback address with the ports free")
}
