// Command netfence analyzes and enforces Kubernetes NetworkPolicy.
// Installed as kubectl-netfence it also runs as `kubectl netfence`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name := "netfence"
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-netfence") {
		name = "kubectl netfence"
	}
	cmd := newRootCommand(name, os.Stdin, os.Stdout, os.Stderr)
	err := cmd.ExecuteContext(ctx)
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries an exit code; its message, if any, is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode prints err and returns the process exit code: 0 on success, the
// code of an exitError, 2 for any other error.
func exitCode(err error, stderr interface{ Write([]byte) (int, error) }) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return 2
}
