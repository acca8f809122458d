package inventory_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

func TestDefaultBaseIsValid(t *testing.T) {
	if err := inventory.DefaultBase().Validate(); err != nil {
		t.Fatal(err)
	}
	if got := inventory.DefaultBase().Policies(); got.DefaultStaleAfter != inventory.DefaultStaleAfter || len(got.Channels) != 3 {
		t.Errorf("DefaultBase().Policies() = %+v", got)
	}
}

// Each break of a base is reported, every one of them when several are
// broken at once.
func TestBaseValidate(t *testing.T) {
	for name, tt := range map[string]struct {
		b    inventory.Base
		want []string
	}{
		"no channels":          {inventory.Base{DefaultStaleAfter: time.Hour}, []string{"no channels configured"}},
		"empty channel list":   {inventory.Base{Channels: []string{}, DefaultStaleAfter: time.Hour}, []string{"no channels configured"}},
		"empty channel id":     {inventory.Base{Channels: []string{"web", ""}, DefaultStaleAfter: time.Hour}, []string{"channel is empty"}},
		"two bad channel ids":  {inventory.Base{Channels: []string{"web shop", "web", "wéb"}, DefaultStaleAfter: time.Hour}, []string{`channel "web shop" has characters outside`, `channel "wéb" has characters outside`}},
		"zero stale-after":     {inventory.Base{Channels: []string{"web"}}, []string{"default merchant stale-after 0s is outside (0, 87600h0m0s]"}},
		"negative stale-after": {inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: -time.Minute}, []string{"default merchant stale-after -1m0s is outside"}},
		"too long stale-after": {inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: inventory.MaxStaleAfter + 1}, []string{"is outside (0, 87600h0m0s]"}},
		"everything":           {inventory.Base{Channels: []string{"store/pickup"}}, []string{`channel "store/pickup" has characters outside`, "default merchant stale-after 0s"}},
	} {
		err := tt.b.Validate()
		if err == nil {
			t.Errorf("%s: Validate() = nil, want %q", name, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate() = %q, want it to mention %q", name, err, w)
			}
		}
	}
	if err := (inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: inventory.MaxStaleAfter}).Validate(); err != nil {
		t.Errorf("the longest stale-after is valid: %v", err)
	}
}
