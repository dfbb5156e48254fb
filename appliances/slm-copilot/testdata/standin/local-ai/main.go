// Command local-ai stands in for LocalAI v4.9.0's CLI in the appliance's tests. It accepts the
// grammar of the subcommands the appliance uses, as LocalAI's kong tags declare it, and refuses
// what the real binary refuses, with its messages. It pulls and serves nothing:
//
//   - `backends install BACKEND [NAME [ALIAS]]` (core/cli/backends.go) installs a backend the
//     way core/services/galleryop/backends.go (InstallExternalBackend) and
//     core/gallery/backends.go do: BACKENDS_PATH/NAME/run.sh and metadata.json. An OCI
//     reference without NAME fails with "specifying a name is required for OCI images".
//     STANDIN_REGISTRY (a file, one reference a line) lists the images that exist; others
//     fail as an unknown manifest would.
//   - `run` (core/cli/run.go) checks its environment: every LOCALAI_* variable must be one
//     v4.9.0 reads (run-env-v4.9.0.txt), typed values must parse, the bind rule of
//     core/cli/run_safety.go holds, and each LOCALAI_LOAD_TO_MEMORY model must load as
//     core/application/startup.go preloads it (its YAML, its backend's run.sh, its file).
//     Then it exits 0 instead of serving. STANDIN_ROOT prefixes absolute paths (a sandbox).
package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed run-env-v4.9.0.txt
var runEnvFile string

// usageError is a kong parse error: kong prints "local-ai: error: ..." and exits 80 (kong
// v1.15.0, the version in LocalAI v4.9.0's go.mod: exit.go exitUsageError).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	err := dispatch(os.Args[1:])
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "local-ai: error: %s\n", ue.msg)
		os.Exit(80)
	default:
		// cmd/local-ai/main.go: xlog.Fatal("Error running the application", "error", err)
		fmt.Fprintf(os.Stderr, "FATAL Error running the application error=%q\n", err.Error())
		os.Exit(1)
	}
}

// flagSpec is one kong flag: bool flags take no value.
type flagSpec struct{ bool bool }

// globalFlags are core/cli/context/context.go's, valid before and after the command.
var globalFlags = map[string]flagSpec{
	"debug": {bool: true}, "log-level": {}, "log-format": {}, "log-dedup-logs": {bool: true}, "no-log-dedup-logs": {bool: true},
}

// backendsFlags are core/cli/backends.go's BackendsCMDFlags.
var backendsFlags = map[string]flagSpec{
	"backend-galleries": {}, "backends-path": {}, "backends-system-path": {}, "require-backend-integrity": {bool: true},
}

// parse splits args into flag values and positionals as kong does for the known flags.
func parse(args []string, known map[string]flagSpec) (map[string]string, []string, error) {
	flags, positional := map[string]string{}, []string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "--") {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		spec, ok := known[name]
		if !ok {
			spec, ok = globalFlags[name]
		}
		if !ok {
			return nil, nil, usageError{fmt.Sprintf("unknown flag --%s", name)}
		}
		if !spec.bool && !hasValue {
			if i+1 >= len(args) {
				return nil, nil, usageError{fmt.Sprintf("--%s: expected string value but got EOL", name)}
			}
			i++
			value = args[i]
		}
		flags[name] = value
	}
	return flags, positional, nil
}

// command finds the first positional of args (skipping flags and their values) and returns it
// with the remaining args.
func command(args []string, known map[string]flagSpec) (string, []string) {
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			return args[i], append(args[:i:i], args[i+1:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		spec, ok := known[name]
		if !ok {
			spec, ok = globalFlags[name]
		}
		if ok && !spec.bool && !hasValue {
			i++
		}
	}
	return "", args
}

func dispatch(args []string) error {
	cmd, rest := command(args, nil)
	switch cmd {
	case "", "run": // `run` is the default command (core/cli/cli.go: default:"withargs")
		if cmd == "" {
			rest = args
		}
		return runCmd(rest)
	case "backends":
		sub, rest := command(rest, backendsFlags)
		if sub != "install" {
			return usageError{"stand-in: only `backends install` is modelled; read core/cli/backends.go before adding more"}
		}
		return backendsInstall(rest)
	default:
		return usageError{fmt.Sprintf("stand-in: command %q is not modelled; read core/cli/cli.go before adding it", cmd)}
	}
}

// root maps an absolute path into the sandbox named by STANDIN_ROOT.
func root(p string) string {
	if r := os.Getenv("STANDIN_ROOT"); r != "" && filepath.IsAbs(p) {
		return filepath.Join(r, p)
	}
	return p
}

// setting is a kong value: the flag, else the first env name set, else the default.
func setting(flags map[string]string, flag string, def string, envs ...string) string {
	if v, ok := flags[flag]; ok {
		return v
	}
	for _, e := range envs {
		if v, ok := os.LookupEnv(e); ok {
			return v
		}
	}
	return def
}

// looksLikeOCI is pkg/downloader/uri.go's LooksLikeOCI.
func looksLikeOCI(s string) bool {
	for _, p := range []string{"quay.io", "oci://", "ollama://", "ocifile://", "ghcr.io", "docker.io"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func backendsInstall(args []string) error {
	flags, pos, err := parse(args, backendsFlags)
	if err != nil {
		return err
	}
	if len(pos) > 3 {
		return usageError{fmt.Sprintf("unexpected argument %s", pos[3])}
	}
	pos = append(pos, "", "", "")
	backend, name, alias := pos[0], pos[1], pos[2]
	path := root(setting(flags, "backends-path", "backends", "LOCALAI_BACKENDS_PATH", "BACKENDS_PATH"))
	if info, err := os.Stat(backend); err == nil && info.IsDir() {
		if name == "" {
			name = filepath.Base(backend)
		}
	} else if looksLikeOCI(backend) && !strings.HasPrefix(backend, "ocifile://") {
		if name == "" {
			return errors.New("specifying a name is required for OCI images")
		}
		if err := published(backend); err != nil {
			return fmt.Errorf("error installing backend %s: %w", backend, err)
		}
	} else {
		if name != "" || alias != "" {
			return errors.New("specifying a name or alias is not supported for gallery backends")
		}
		return fmt.Errorf("error installing backend %s: stand-in: gallery installs need the network; the appliance pins an OCI image", backend)
	}
	dir := filepath.Join(path, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n# stand-in backend\n"), 0o755); err != nil {
		return err
	}
	meta, _ := json.Marshal(map[string]string{"name": name, "alias": alias, "uri": backend})
	fmt.Fprintf(os.Stderr, "INFO Installing backend from OCI image backend=%s name=%s\n", backend, name)
	return os.WriteFile(filepath.Join(dir, "metadata.json"), meta, 0o644)
}

// published fails like a registry without the image when STANDIN_REGISTRY does not list it.
func published(ref string) error {
	list := os.Getenv("STANDIN_REGISTRY")
	if list == "" {
		return nil
	}
	b, err := os.ReadFile(list)
	if err != nil {
		return err
	}
	if slices.Contains(strings.Fields(string(b)), ref) {
		return nil
	}
	return fmt.Errorf("failed to download backend %q: MANIFEST_UNKNOWN: manifest unknown", ref)
}

var intEnvs = []string{"LOCALAI_THREADS", "LOCALAI_CONTEXT_SIZE", "LOCALAI_UPLOAD_LIMIT"}
var boolEnvs = []string{"LOCALAI_DISABLE_WEBUI", "LOCALAI_F16", "LOCALAI_CORS", "LOCALAI_AUTH", "LOCALAI_DISABLE_GALLERY_ENDPOINT"}

func runCmd(args []string) error {
	_, pos, err := parse(args, nil)
	if err != nil {
		return usageError{err.Error() + " (stand-in: only core/cli/context flags are modelled for run; the appliance configures run through its environment)"}
	}
	if len(pos) > 0 {
		return usageError{"stand-in: model URL arguments are not modelled"}
	}
	known := map[string]bool{}
	for _, line := range strings.Split(runEnvFile, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			known[line] = true
		}
	}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "LOCALAI_") {
			continue
		}
		if !known[name] {
			return fmt.Errorf("stand-in: LocalAI v4.9.0 reads no %s (core/cli/run.go): the setting would be silently ignored", name)
		}
		// kong v1.15.0 (LocalAI's go.mod): mapper.go's int and bool decoders, model.go's Reset.
		if slices.Contains(intEnvs, name) {
			if _, err := strconv.ParseInt(value, 0, 64); err != nil {
				return usageError{fmt.Sprintf("expected a valid 64 bit int but got %q (from envar %s=%q)", value, name, value)}
			}
		}
		if slices.Contains(boolEnvs, name) && !slices.Contains([]string{"true", "1", "yes", "false", "0", "no"}, strings.ToLower(value)) {
			return usageError{fmt.Sprintf("bool value must be true, 1, yes, false, 0 or no but got %q (from envar %s=%q)", strings.ToLower(value), name, value)}
		}
	}
	address := setting(nil, "", ":8080", "LOCALAI_ADDRESS", "ADDRESS")
	if setting(nil, "", "", "LOCALAI_API_KEY", "API_KEY") == "" && !loopback(address) {
		return fmt.Errorf("refusing to start: API bound to public address %q with no authentication configured", address)
	}
	models := root(setting(nil, "", "models", "LOCALAI_MODELS_PATH", "MODELS_PATH"))
	backends := root(setting(nil, "", "backends", "LOCALAI_BACKENDS_PATH", "BACKENDS_PATH"))
	preload := setting(nil, "", "", "LOCALAI_LOAD_TO_MEMORY", "LOAD_TO_MEMORY")
	for _, m := range strings.Split(preload, ",") {
		if m == "" {
			continue
		}
		if err := load(models, backends, m); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "INFO stand-in: LocalAI v4.9.0 would serve on %s (preloaded: %s)\n", address, preload)
	return nil
}

// loopback is the part of run_safety.go's trusted-bind rule the appliance relies on.
func loopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// load checks that model name would preload: a config named so, its backend installed, its file.
func load(models, backends, name string) error {
	files, _ := filepath.Glob(filepath.Join(models, "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var cfg struct {
			Name       string `yaml:"name"`
			Backend    string `yaml:"backend"`
			Parameters struct {
				Model string `yaml:"model"`
			} `yaml:"parameters"`
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("cannot load model config %s: %w", f, err)
		}
		if cfg.Name != name {
			continue
		}
		if _, err := os.Stat(filepath.Join(backends, cfg.Backend, "run.sh")); err != nil {
			// pkg/model/initializers.go
			return fmt.Errorf("failed to load model %s: backend not found: %s", name, cfg.Backend)
		}
		if _, err := os.Stat(filepath.Join(models, cfg.Parameters.Model)); err != nil {
			return fmt.Errorf("failed to load model %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("failed to load model %s: model config not found in %s", name, models)
}
