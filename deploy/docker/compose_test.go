// Package docker_test runs the container packaging for real: it builds the image with
// scripts/docker-image.sh, starts deploy/docker/compose.yaml as a 3-node cluster, and
// puts it through what an operator will do to it.
package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/ports"
)

// optIn is the environment variable that runs the test: it builds a binary and an image
// and runs Docker containers, which takes a minute or more; .ci/run sets it.
const optIn = "DURO_DOCKER_TESTS"

// The cluster from compose.yaml, in Docker, answers calls; keeps answering them, exactly
// once, when a node is killed and when one is cut off from the network; and the node
// that was killed, restarted from its volume, and the one that was cut off, reconnected,
// both serve again and report healthy.
func TestComposeCluster(t *testing.T) {
	if os.Getenv(optIn) != "1" {
		t.Skipf("builds the image and runs a 3-node cluster in Docker (about a minute); set %s=1 to run it", optIn)
	}
	compose := composeCommand(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	phase := func(name string, since time.Time) { t.Logf("%-44s %6.1fs", name, time.Since(since).Seconds()) }

	// The image, built as an operator builds it, tagged for this run only.
	suffix := randomSuffix(t)
	const version = "v0.0.0-composetest"
	image := "duro-composetest:" + suffix
	build := exec.Command(filepath.Join(root, "scripts", "docker-image.sh"), version)
	build.Env = append(os.Environ(), "IMAGE="+image)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/docker-image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", "-f", image).CombinedOutput(); err != nil {
			t.Errorf("docker rmi %s: %v\n%s", image, err, out)
		}
	})
	phase("build binary and image", start)

	// The cluster, under a project name of its own (so its own network and volumes), its
	// HTTP ports published on loopback ports free right now.
	base, err := ports.FreeBase(0, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, compose: compose, project: "durotest" + suffix,
		file: filepath.Join(root, "deploy", "docker", "compose.yaml"),
		env:  []string{"DURO_IMAGE=" + image}, http: map[string]string{}, ids: map[string]string{}}
	for i, n := range []string{"n1", "n2", "n3"} {
		port := strconv.Itoa(base + i)
		c.env = append(c.env, fmt.Sprintf("DURO_%s_HTTP_PORT=%s", strings.ToUpper(n), port))
		c.http[n] = "127.0.0.1:" + port
	}
	t.Cleanup(c.down) // registered before up: a half-started project is removed too
	up := time.Now()
	if out, err := c.composeRun("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		out, err := c.composeRun("ps", "-q", n)
		if err != nil || strings.TrimSpace(out) == "" {
			t.Fatalf("compose ps -q %s: %v\n%s", n, err, out)
		}
		c.ids[n] = strings.TrimSpace(out)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		c.waitReady(n, 90*time.Second)
	}
	phase("compose up until every node is ready", up)
	// Docker's health check too. Until a container's first check passes its status
	// stays "starting", and failures inside the start period do not count, so the
	// partition below could not turn it unhealthy.
	for _, n := range []string{"n1", "n2", "n3"} {
		eventually(t, 60*time.Second, func() error { return c.wantHealth(n, "healthy") })
	}
	phase("compose up until Docker says healthy", up)

	// Each node runs the build the script stamped, and says so on /metrics.
	for _, n := range []string{"n1", "n2", "n3"} {
		metrics := c.get(n, "/metrics")
		if want := `version="` + version + `"`; !strings.Contains(metrics, "duro_build_info{") || !strings.Contains(metrics, want) {
			t.Errorf("%s /metrics: no duro_build_info with %s", n, want)
		}
	}

	// A counter, called through the nodes' own binary on the compose network: each call
	// must add exactly once, whatever happened in between.
	name := "compose-" + suffix
	calls := 0
	call := func(via string) {
		t.Helper()
		calls++
		out, err := c.exec(via, "/duro", "call", "--timeout", "30s", "Counter", name, "Add", "1")
		if err != nil || strings.TrimSpace(out) != strconv.Itoa(calls) {
			t.Fatalf("call %d via %s: %v, printed %q, want %d", calls, via, err, strings.TrimSpace(out), calls)
		}
	}
	call("n1")

	// A crash: SIGKILL n1. The others elect leaders for its groups and serve.
	killed := time.Now()
	run(t, "docker", "kill", c.ids["n1"])
	call("n2")
	phase("kill n1 until a call via n2 answers", killed)

	// Restarted on its volume, n1 catches up and serves again.
	restarted := time.Now()
	run(t, "docker", "start", c.ids["n1"])
	c.waitReady("n1", 60*time.Second)
	call("n1")
	phase("restart n1 until it is ready and answers", restarted)

	// A partition: n3 loses the network. It cannot reach a quorum, so it must stop
	// calling itself ready, and the compose file's health check must see it (after its
	// retries: 3 failures 5 s apart); the other two keep serving.
	network := c.network("n3")
	cut := time.Now()
	run(t, "docker", "network", "disconnect", network, c.ids["n3"])
	eventually(t, 30*time.Second, func() error {
		if out, err := c.exec("n3", "/duro", "health"); err == nil {
			return fmt.Errorf("n3 cut off, still ready: %s", out)
		}
		return nil
	})
	phase("disconnect n3 until it reports not ready", cut)
	call("n1")
	eventually(t, 60*time.Second, func() error { return c.wantHealth("n3", "unhealthy") })
	phase("disconnect n3 until Docker says unhealthy", cut)

	// Healed: n3 rejoins (under its service name, which compose gave it as an alias),
	// is ready, Docker's health check says healthy again, `duro status` sees every node
	// and a leader for every group, and n3 serves calls again.
	healed := time.Now()
	run(t, "docker", "network", "connect", "--alias", "n3", network, c.ids["n3"])
	eventually(t, 60*time.Second, func() error {
		if out, err := c.exec("n3", "/duro", "health"); err != nil {
			return fmt.Errorf("n3 not ready: %v %s", err, out)
		}
		if err := c.wantHealth("n3", "healthy"); err != nil {
			return err
		}
		if out, err := c.exec("n1", "/duro", "status"); err != nil {
			return fmt.Errorf("duro status: %v\n%s", err, out)
		}
		return nil
	})
	call("n3")
	phase("reconnect n3 until healthy and answering", healed)
	phase("whole test, teardown excepted", start)
}

// cluster is one compose project of the test.
type cluster struct {
	t       testing.TB
	compose []string // "docker compose" or "docker-compose"
	project string
	file    string
	env     []string          // for compose: the image and the published ports
	http    map[string]string // service → its HTTP port on the host
	ids     map[string]string // service → container ID
}

func (c *cluster) composeRun(args ...string) (string, error) {
	argv := append(append(c.compose[1:len(c.compose):len(c.compose)], "-p", c.project, "-f", c.file), args...)
	cmd := exec.Command(c.compose[0], argv...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// down removes the project's containers, network and volumes, first logging the nodes'
// output if the test failed.
func (c *cluster) down() {
	if c.t.Failed() {
		out, _ := c.composeRun("logs", "--no-color", "--tail", "100")
		c.t.Logf("compose logs:\n%s", out)
	}
	if out, err := c.composeRun("down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		c.t.Errorf("compose down: %v\n%s", err, out)
	}
}

// exec runs argv in service's container and returns its output.
func (c *cluster) exec(service string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", c.ids[service]}, argv...)...).CombinedOutput()
	return string(out), err
}

// get returns the body of a GET of path on service's published HTTP port.
func (c *cluster) get(service, path string) string {
	c.t.Helper()
	resp, err := http.Get("http://" + c.http[service] + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

// waitReady waits until service's /readyz answers 200 through its published port.
func (c *cluster) waitReady(service string, d time.Duration) {
	c.t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	eventually(c.t, d, func() error {
		resp, err := client.Get("http://" + c.http[service] + "/readyz")
		if err != nil {
			return fmt.Errorf("%s: %v", service, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", service, resp.Status, bytes.TrimSpace(b))
		}
		return nil
	})
}

// wantHealth returns nil if Docker's health status of service is want.
func (c *cluster) wantHealth(service, want string) error {
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Health.Status}}", c.ids[service]).CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != want {
		return fmt.Errorf("%s: Docker's health status %q (%v), want %q", service, got, err, want)
	}
	return nil
}

// network returns the one network service's container is attached to.
func (c *cluster) network(service string) string {
	c.t.Helper()
	out := run(c.t, "docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", c.ids[service])
	var nets map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &nets); err != nil || len(nets) != 1 {
		c.t.Fatalf("networks of %s: %v %s", service, err, out)
	}
	for n := range nets {
		return n
	}
	return ""
}

// composeCommand finds Compose, skipping the test when Docker or its daemon is not
// there.
func composeCommand(t testing.TB) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not installed")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("the Docker daemon is not reachable: %v %s", err, bytes.TrimSpace(out))
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	t.Skip("neither `docker compose` nor docker-compose is installed")
	return nil
}

// run runs a command that must succeed and returns its output.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// randomSuffix names this run's image and project, so runs side by side do not meet.
func randomSuffix(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// eventually calls cond until it returns nil, failing the test with its last error if
// that has not happened within d.
func eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", d, err)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not a wait for a state
	}
}
