package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "exit 0 if the node on this machine is ready to serve, 1 if not: for health checks",
		Description: "Asks one node's HTTP port for /readyz: ready means its meta group has a leader and\n" +
			"every group it hosts has a leader and has applied what it knows is committed. With\n" +
			"--live it asks /livez instead: the process answers at all.\n\n" +
			"--http reads DURO_HTTP, as `duro server` does, so where the node is configured by\n" +
			"environment (a container, a systemd unit) the check needs no flags; a host of\n" +
			"0.0.0.0 or :: (listen everywhere) is dialled on loopback. It needs no shell or curl:\n" +
			"  HEALTHCHECK CMD [\"/duro\", \"health\"]\n\n" +
			"Exit status: 0 ready (or live); 1 not ready, or no answer; 2 bad usage.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http", Usage: "the node's HTTP address, as given to duro server --http: `host:port`", Value: "127.0.0.1:7180", EnvVars: []string{"DURO_HTTP"}},
			&cli.BoolFlag{Name: "live", Usage: "check only that the process answers (/livez), not that it is ready"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 2 * time.Second},
		},
		Action: runHealth,
	}
}

func runHealth(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr("health takes no arguments, got %q (flags start with --)", c.Args().First())
	}
	addr, err := dialableHTTP(c.String("http"))
	if err != nil {
		return usageErr("--http: %v", err)
	}
	path := "/readyz"
	if c.Bool("live") {
		path = "/livez"
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return usageErr("--http: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error // says the method and URL again: keep only why
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &exitError{code: exitFailed, err: fmt.Errorf("no answer from %s%s: %w", addr, path, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024)) // the endpoints answer one line
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		if msg == "" {
			msg = resp.Status
		}
		return &exitError{code: exitFailed, err: fmt.Errorf("%s%s: %s", addr, path, msg)}
	}
	fmt.Fprintf(c.App.Writer, "%s%s: %s\n", addr, path, msg)
	return nil
}

// dialableHTTP turns a node's --http value into an address to dial from the same
// machine: a listen-everywhere host (none, 0.0.0.0, ::) becomes loopback.
func dialableHTTP(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("%q: bad port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}
