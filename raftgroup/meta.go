package raftgroup

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/duro-db/duro/fsm"
)

// The meta group stores the cluster record as keys of one reserved object (all-zero ID), so
// it needs no state machine of its own: it is an fsm.Store like every data group.
var metaObject = make([]byte, fsm.IDLen)

const (
	metaKeyCluster   = "cluster"
	metaKeyPlacement = "placement"
)

// ClusterRecord is the meta group's description of the cluster.
type ClusterRecord struct {
	ClusterID string `msgpack:"id"`
	Groups    int    `msgpack:"g"`
	Replicas  int    `msgpack:"r"`
	Slots     int    `msgpack:"s"`
	Members   []Peer `msgpack:"m"`
	Created   int64  `msgpack:"c"`
}

type placementRecord struct {
	Slots    []uint64            `msgpack:"s"`
	Replicas map[uint64][]string `msgpack:"r"`
}

// recordCluster writes the cluster record and placement into the meta group unless they are
// already there and current. Only the meta leader calls it.
func (n *Node) recordCluster(ctx context.Context, g *Group) error {
	want := ClusterRecord{ClusterID: n.placement.ClusterID, Groups: n.cfg.Groups,
		Replicas: n.cfg.Replicas, Slots: n.cfg.Slots, Members: n.cfg.Peers}
	have, ok, err := n.ClusterRecord()
	if err != nil {
		return err
	}
	if ok {
		if have.ClusterID != want.ClusterID {
			return fmt.Errorf("meta group holds cluster %s, this node belongs to %s", have.ClusterID, want.ClusterID)
		}
		want.Created = have.Created
		a, _ := msgpack.Marshal(have.Members)
		b, _ := msgpack.Marshal(want.Members)
		if bytes.Equal(a, b) {
			return nil
		}
	} else {
		want.Created = time.Now().UnixNano()
	}
	rec, err := msgpack.Marshal(&want)
	if err != nil {
		return err
	}
	pl, err := msgpack.Marshal(&placementRecord{Slots: n.placement.Slots, Replicas: n.placement.Replicas})
	if err != nil {
		return err
	}
	_, err = g.Commit(ctx, &fsm.Command{
		Object: metaObject,
		Ops: []fsm.Op{
			{Kind: fsm.OpPut, Key: []byte(metaKeyCluster), Value: rec},
			{Kind: fsm.OpPut, Key: []byte(metaKeyPlacement), Value: pl},
		},
		Time: time.Now().UnixNano(),
	})
	if err == nil {
		n.log.Info("cluster record written to meta group", "cluster", want.ClusterID, "members", len(want.Members))
	}
	return err
}

// ClusterRecord reads the cluster record from this node's replica of the meta group (not a
// linearizable read; the record changes only when members' addresses do).
func (n *Node) ClusterRecord() (ClusterRecord, bool, error) {
	var rec ClusterRecord
	var found bool
	err := n.groups[MetaGroup].View(func(tx *fsm.Tx) error {
		v, ok := tx.Get(metaObject, []byte(metaKeyCluster))
		if !ok {
			return nil
		}
		found = true
		return msgpack.Unmarshal(v, &rec)
	})
	return rec, found, err
}
