// Command gitserver serves the Git repositories under a directory over smart HTTP, read-only, on
// one loopback address: git's own `git http-backend` runs behind Go's CGI handler, which is how
// a web server hosts Git. Flux's source-controller clones from it in the test bed.
//
// It prints "listening on http://<address>" once the socket is bound, so the caller can read the
// port when it asked for port 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	root := flag.String("root", "", "directory holding the bare repositories (<name>.git)")
	flag.Parse()
	if err := run(*listen, *root); err != nil {
		fmt.Fprintln(os.Stderr, "gitserver:", err)
		os.Exit(1)
	}
}

func run(listen, root string) error {
	if root == "" {
		return errors.New("-root is required")
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: only a loopback address is served", listen)
	}
	absolute, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	backend, err := httpBackend()
	if err != nil {
		return err
	}
	handler := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + absolute,
			"GIT_HTTP_EXPORT_ALL=1",
		},
	}
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on http://%s\n", listener.Addr())
	server := &http.Server{
		Handler:           readOnly(handler),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return server.Serve(listener)
}

// httpBackend finds git-http-backend in git's exec path.
func httpBackend() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("git --exec-path: %w", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("git-http-backend: %w", err)
	}
	return path, nil
}

// readOnly refuses pushes: clients only fetch; the test writes the repository on disk.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack" {
			http.Error(w, "read-only", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
