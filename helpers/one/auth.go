package one

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables OpenNebula's own tools read, with the same meaning.
const (
	// EndpointEnv holds oned's XML-RPC URL.
	EndpointEnv = "ONE_XMLRPC"
	// AuthFileEnv holds the path of a file whose first line is user:password.
	AuthFileEnv = "ONE_AUTH"
	// DefaultEndpoint is where OpenNebula's tools look when nothing is set.
	DefaultEndpoint = "http://localhost:2633/RPC2"
)

// ResolveEndpoint returns the flag's value, else $ONE_XMLRPC, else DefaultEndpoint.
func ResolveEndpoint(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(EndpointEnv); env != "" {
		return env
	}
	return DefaultEndpoint
}

// ResolveAuth returns the session string user:password and where it came from: the
// flag's value, else the file named by $ONE_AUTH, else ~/.one/one_auth, as OpenNebula's
// tools do. Unlike goca.NewConfig, a missing file is an error to report, not log.Fatal.
func ResolveAuth(flagValue string) (session, source string, err error) {
	if flagValue != "" {
		return checkSession(flagValue, "-one.auth")
	}
	path, source := os.Getenv(AuthFileEnv), "$"+AuthFileEnv
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", fmt.Errorf("no -one.auth, no $%s and no home directory for ~/.one/one_auth: %w", AuthFileEnv, err)
		}
		path, source = filepath.Join(home, ".one", "one_auth"), "~/.one/one_auth"
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("no OpenNebula credentials: give -one.auth=user:password, or $%s naming a file, or ~/.one/one_auth (%s does not exist)", AuthFileEnv, path)
	}
	if err != nil {
		return "", "", fmt.Errorf("read OpenNebula credentials: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", "", fmt.Errorf("read OpenNebula credentials from %s: empty file", path)
	}
	return checkSession(strings.TrimSpace(line), source+" ("+path+")")
}

func checkSession(session, source string) (string, string, error) {
	user, password, ok := strings.Cut(session, ":")
	if !ok || user == "" || password == "" {
		return "", "", fmt.Errorf("OpenNebula credentials from %s are not user:password", source)
	}
	return session, source, nil
}

// User is the user part of a session, safe to print.
func User(session string) string {
	user, _, _ := strings.Cut(session, ":")
	return user
}
