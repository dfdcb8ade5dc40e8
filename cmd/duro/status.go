package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/client"

	"github.com/duro-db/duro/internal/diskspace"
)

// clusterView is every member's status, as far as each could be reached.
type clusterView struct {
	ClusterID string            `json:"cluster_id"`
	Nodes     []nodeView        `json:"nodes"`
	Leaders   map[uint64]string `json:"leaders"` // group → leader node ID, by majority of reports
}

type nodeView struct {
	ID        string           `json:"id"`
	Addr      string           `json:"addr"`
	Reachable bool             `json:"reachable"`
	Error     string           `json:"error,omitempty"`
	Status    *duro.NodeStatus `json:"status,omitempty"`
}

func adminFlags() []cli.Flag {
	return []cli.Flag{
		endpointsFlag(),
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
		&cli.DurationFlag{Name: "timeout", Usage: "give up on a node after this long", Value: 3 * time.Second},
	}
}

// gather learns the members from any endpoint, then asks each member for its status.
func gather(c *cli.Context) (*clusterView, error) {
	timeout := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	cl, err := client.Dial(ctx, endpoints(c))
	if err != nil {
		return nil, &exitError{code: exitRetryable, err: err} // it names each endpoint and why it failed
	}
	defer cl.Close()
	view := &clusterView{ClusterID: cl.ClusterID(), Leaders: map[uint64]string{}}
	members := cl.Members()
	view.Nodes = make([]nodeView, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		view.Nodes[i] = nodeView{ID: m.ID, Addr: m.Addr}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Context, timeout)
			defer cancel()
			b, err := cl.NodeStatus(ctx, m.Addr)
			if err != nil {
				view.Nodes[i].Error = oneLine(err)
				return
			}
			var st duro.NodeStatus
			if err := json.Unmarshal(b, &st); err != nil {
				view.Nodes[i].Error = "bad status: " + err.Error()
				return
			}
			view.Nodes[i].Reachable, view.Nodes[i].Status = true, &st
		}()
	}
	wg.Wait()
	// A group's leader is the node that says it serves it.
	for _, n := range view.Nodes {
		if n.Status == nil {
			continue
		}
		for _, g := range n.Status.Groups {
			if g.Serving {
				view.Leaders[g.ID] = n.ID
			}
		}
	}
	return view, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show every node: reachability, groups led and followed, terms and indexes",
		Description: "Asks any endpoint for the members, then each member for its view, like\n" +
			"`etcdctl endpoint status`. A node that cannot be reached is shown as such; the\n" +
			"exit status is 0 when every node answered and every group has a leader, 1 otherwise.",
		Flags: adminFlags(),
		Action: func(c *cli.Context) error {
			view, err := gather(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, view); err != nil {
					return err
				}
			} else {
				printStatus(c.App.Writer, view)
			}
			return view.health()
		},
	}
}

// health is nil when every node answered and every data group has a serving leader.
func (v *clusterView) health() error {
	var down []string
	groups := map[uint64]bool{}
	for _, n := range v.Nodes {
		if !n.Reachable {
			down = append(down, n.ID)
			continue
		}
		for _, g := range n.Status.Groups {
			groups[g.ID] = true
		}
	}
	var leaderless []string
	for g := range groups {
		if _, ok := v.Leaders[g]; !ok {
			leaderless = append(leaderless, strconv.FormatUint(g, 10))
		}
	}
	sort.Strings(leaderless)
	switch {
	case len(down) > 0 && len(leaderless) > 0:
		return &exitError{code: exitFailed, err: fmt.Errorf("unreachable: %s; no leader: group %s", strings.Join(down, ", "), strings.Join(leaderless, ", "))}
	case len(down) > 0:
		return &exitError{code: exitFailed, err: fmt.Errorf("unreachable: %s (every group still has a leader)", strings.Join(down, ", "))}
	case len(leaderless) > 0:
		return &exitError{code: exitFailed, err: fmt.Errorf("no leader: group %s", strings.Join(leaderless, ", "))}
	}
	return nil
}

func printStatus(w io.Writer, v *clusterView) {
	fmt.Fprintf(w, "cluster %s\n\n", v.ClusterID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var lowDisk []string
	fmt.Fprintln(tw, "NODE\tADDRESS\tREACHABLE\tREADY\tLEADS\tFOLLOWS\tTERMS\tCOMMIT\tAPPLIED\tDISK FREE")
	for _, n := range v.Nodes {
		if n.Status == nil {
			fmt.Fprintf(tw, "%s\t%s\tno\t-\t-\t-\t-\t-\t-\t-\t(%s)\n", n.ID, n.Addr, n.Error)
			continue
		}
		var leads, follows int
		var minTerm, maxTerm, commit, applied uint64
		minTerm = ^uint64(0)
		for _, g := range n.Status.Groups {
			if g.Serving {
				leads++
			} else {
				follows++
			}
			minTerm, maxTerm = min(minTerm, g.Term), max(maxTerm, g.Term)
			commit += g.Commit
			applied += g.Applied
		}
		terms := strconv.FormatUint(maxTerm, 10)
		if minTerm != maxTerm {
			terms = fmt.Sprintf("%d-%d", minTerm, maxTerm)
		}
		ready := "yes"
		if !n.Status.Ready {
			ready = "no: " + n.Status.NotReady
		}
		disk := diskspace.Bytes(n.Status.Disk.Free)
		if d := n.Status.Disk; d.Low {
			disk += fmt.Sprintf(" < reserve %s: WRITES REFUSED", diskspace.Bytes(d.Reserve))
			lowDisk = append(lowDisk, n.ID)
		}
		fmt.Fprintf(tw, "%s\t%s\tyes\t%s\t%d\t%d\t%s\t%d\t%d\t%s\n", n.ID, n.Addr, ready, leads, follows, terms, commit, applied, disk)
	}
	tw.Flush()
	if len(lowDisk) > 0 {
		fmt.Fprintf(w, "\nno space: %s below the disk reserve; calls that store something get ErrNoSpace until space is\n"+
			"freed (delete objects or files, or grow the file system); reads and deletes go on.\n", strings.Join(lowDisk, ", "))
	}
	fmt.Fprintln(w, "\nCOMMIT and APPLIED are summed over the node's groups; `duro groups` shows each group.")
	fmt.Fprintf(w, "\nleaders: %s\n", formatLeaders(v))
}

func formatLeaders(v *clusterView) string {
	byNode := map[string][]string{}
	for g, id := range v.Leaders {
		if g == 0 {
			id += "(meta)"
		}
		byNode[id] = append(byNode[id], strconv.FormatUint(g, 10))
	}
	var parts []string
	for _, n := range v.Nodes {
		gs := append(byNode[n.ID], byNode[n.ID+"(meta)"]...)
		sort.Slice(gs, func(i, j int) bool { a, _ := strconv.Atoi(gs[i]); b, _ := strconv.Atoi(gs[j]); return a < b })
		parts = append(parts, fmt.Sprintf("%s=[%s]", n.ID, strings.Join(gs, " ")))
	}
	return strings.Join(parts, " ")
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list the cluster's nodes and whether each answers",
		Flags: adminFlags(),
		Action: func(c *cli.Context) error {
			view, err := gather(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, view.Nodes)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tADDRESS\tHTTP\tREACHABLE")
			for _, n := range view.Nodes {
				httpAddr, reach := "-", "no ("+n.Error+")"
				if n.Status != nil {
					httpAddr, reach = n.Status.HTTP, "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, n.Addr, httpAddr, reach)
			}
			return tw.Flush()
		},
	}
}

func groupsCommand() *cli.Command {
	return &cli.Command{
		Name:  "groups",
		Usage: "list every Raft group: leader, term, replicas and their indexes",
		Flags: adminFlags(),
		Action: func(c *cli.Context) error {
			view, err := gather(c)
			if err != nil {
				return err
			}
			type replica struct {
				node string
				g    duro.GroupStatus
			}
			byGroup := map[uint64][]replica{}
			for _, n := range view.Nodes {
				if n.Status == nil {
					continue
				}
				for _, g := range n.Status.Groups {
					byGroup[g.ID] = append(byGroup[g.ID], replica{n.ID, g})
				}
			}
			ids := make([]uint64, 0, len(byGroup))
			for id := range byGroup {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			if c.Bool("json") {
				out := map[string]any{}
				for _, id := range ids {
					out[strconv.FormatUint(id, 10)] = map[string]any{"leader": view.Leaders[id], "replicas": byGroup[id]}
				}
				return printJSON(c.App.Writer, out)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tLEADER\tTERM\tREPLICAS (node:commit/applied)")
			for _, id := range ids {
				name := strconv.FormatUint(id, 10)
				if id == 0 {
					name = "0 (meta)"
				}
				leader := view.Leaders[id]
				if leader == "" {
					leader = "NONE"
				}
				var term uint64
				var reps []string
				for _, r := range byGroup[id] {
					term = max(term, r.g.Term)
					reps = append(reps, fmt.Sprintf("%s:%d/%d", r.node, r.g.Commit, r.g.Applied))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", name, leader, term, strings.Join(reps, " "))
			}
			return tw.Flush()
		},
	}
}
