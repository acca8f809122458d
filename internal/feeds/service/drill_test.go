package service_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/internal/testkit"
)

type answerView struct {
	OnHand  string `json:"onHand"`
	Version string `json:"version"`
}

// answers reads every SKU's availability from the gateway.
func (s *stack) answers(skus []string) (map[string]answerView, error) {
	out := map[string]answerView{}
	for _, sku := range skus {
		a := s.do("GET", "/v1/availability/"+sku, "", "", nil)
		if a.status != 200 {
			return nil, fmt.Errorf("%s: %s", sku, a)
		}
		var v answerView
		if err := json.Unmarshal(a.body, &v); err != nil {
			return nil, err
		}
		out[sku] = v
	}
	return out, nil
}

// TestBrokerLossDrill runs feeds through the whole pipeline, destroys the
// broker's data, starts a fresh empty broker on the same port, recovers as
// the README says (restore the registry from the gateway's local copy, wipe
// every local cache of the lost cluster, rewind the outbox to a checkpoint
// before the loss) and checks that every SKU's answer equals the one the
// undisturbed run gave.
func TestBrokerLossDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	// The test holds the broker's port throughout, so the second broker
	// gets the same address without a gap another process could use.
	port := testkit.HoldPort(t)
	bA := testkit.StartBrokerIn(t, t.TempDir(), port)
	k := bA.Kafka
	data := t.TempDir()
	s := startStack(t, stackOpts{kafka: k, dataDir: data, publish: true, processors: true})
	tok := s.createMerchant("DRILL", "DR-1", "DR-2")

	// Two feeds: the second overrides some levels of the first, and the
	// first repeats a key (the later row wins).
	const skus = 60
	expect := map[string]int64{}
	var feed1, feed2 strings.Builder
	feed1.WriteString("sku,location,on_hand\n")
	feed2.WriteString("sku,location,on_hand\n")
	names := make([]string, skus)
	for i := range skus {
		names[i] = fmt.Sprintf("DRILL-%03d", i)
		fmt.Fprintf(&feed1, "%s,DR-1,%d\n%s,DR-2,%d\n", names[i], i, names[i], 100+i)
		expect[names[i]] = int64(i + 100 + i)
	}
	fmt.Fprintf(&feed1, "%s,DR-1,%d\n", names[0], 7) // repeated key: this later row wins
	expect[names[0]] = 7 + 100
	for i := 0; i < skus; i += 2 {
		fmt.Fprintf(&feed2, "%s,DR-2,%d\n", names[i], 1000+i)
		expect[names[i]] += int64(1000+i) - int64(100+i)
	}
	a1, st1 := s.upload("DRILL", tok, "text/csv", feed1.String())
	if a1.status != 200 || st1.GetAccepted() != 2*skus+1 {
		t.Fatalf("feed 1: %s", a1)
	}
	if a2, st2 := s.upload("DRILL", tok, "text/csv", feed2.String()); a2.status != 200 || st2.GetAccepted() != skus/2 {
		t.Fatalf("feed 2: %s", a2)
	}
	var baseline map[string]answerView
	testkit.Eventually(t, 60*time.Second, func() error {
		got, err := s.answers(names)
		if err != nil {
			return err
		}
		for sku, want := range expect {
			if got[sku].OnHand != strconv.FormatInt(want, 10) {
				return fmt.Errorf("%s: on hand %s, want %d", sku, got[sku].OnHand, want)
			}
		}
		baseline = got
		return nil
	})
	before := st1.GetFirstSequence() // a checkpoint before the loss

	// The disaster: the broker and every byte of its data are gone.
	s.stop()
	bA.Close()
	if err := os.RemoveAll(bA.DataDir); err != nil {
		t.Fatal(err)
	}
	bB := testkit.StartBrokerIn(t, t.TempDir(), port) // fresh, empty, same address
	if bB.Addrs()[0] != k.Brokers[0] {
		t.Fatalf("second broker at %s, want the first one's address %s", bB.Addrs()[0], k.Brokers[0])
	}

	// Recovery, as in the README:
	// 1. re-publish the registry from the gateway's local copy;
	if n, err := registry.Restore(k, filepath.Join(data, "feeds", "registry")); err != nil || n != 1 {
		t.Fatalf("restore registry: %d, %v", n, err)
	}
	// 2. wipe every local cache of the lost cluster (they are ahead of it);
	for _, d := range []string{"processors", "reconciler", "views", filepath.Join("feeds", "registry")} {
		if err := os.RemoveAll(filepath.Join(data, d)); err != nil {
			t.Fatal(err)
		}
	}
	// 3. rewind the outbox to a checkpoint before the loss.
	if cp, err := outbox.RewindDir(filepath.Join(data, "feeds", "outbox"), before, time.Time{}, true); err != nil || cp != before-1 {
		t.Fatalf("rewind: %d, %v", cp, err)
	}
	s2 := startStack(t, stackOpts{kafka: bB.Kafka, dataDir: data, publish: true, processors: true})
	testkit.Eventually(t, 90*time.Second, func() error {
		got, err := s2.answers(names)
		if err != nil {
			return err
		}
		for _, sku := range names {
			if got[sku] != baseline[sku] {
				return fmt.Errorf("%s: %+v after recovery, %+v without the disaster", sku, got[sku], baseline[sku])
			}
		}
		return nil
	})
	// The merchant's token still works: the registry came back.
	if a := s2.do("GET", "/v1/merchants/DRILL/locations", tok, "", nil); a.status != 200 {
		t.Errorf("merchant token after recovery: %s", a)
	}
}
