package inventory_test

import (
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// richState has every slice of a State non-empty, at every depth: those the
// events below do not fill (fields added later, e.g. for demand) get one
// zero element, so Clone is checked on them too.
func richState(t tb) inventory.State {
	s := richStock(t)
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice && f.Len() == 0 {
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		}
	}
	return s
}

func richStock(t tb) inventory.State {
	return applyAll(t, inventory.State{},
		lvl("WH-1", 10, at(1), 0),
		adj("a", "WH-1", 1, at(2)),
		adjIn("b", "ST-2", inventory.AreaFloor, 2, at(2)),
		sellable("web", true, at(1)),
		salesCap("web", 3, at(1), at(5), at(1)),
		backorder(2, at(1)),
		safety("WH-1", 1, at(1)),
	)
}

// sharedSlices reports the paths of non-empty slices that a and b share a
// backing array for, walking both by reflection so fields added later are
// covered.
func sharedSlices(a, b reflect.Value, path string) []string {
	var out []string
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for i := range min(a.Len(), b.Len()) {
			out = append(out, sharedSlices(a.Index(i), b.Index(i), path+"[]")...)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			out = append(out, sharedSlices(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
		}
	case reflect.Map, reflect.Pointer:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
	}
	return out
}

func TestCloneIsDeep(t *testing.T) {
	s := richState(t)
	// The walk must see every slice field of State and Location non-empty,
	// or it proves nothing about them.
	for _, typ := range []reflect.Type{reflect.TypeFor[inventory.State](), reflect.TypeFor[inventory.Location]()} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Type.Kind() != reflect.Slice {
				continue
			}
			var v reflect.Value
			if typ == reflect.TypeFor[inventory.State]() {
				v = reflect.ValueOf(s).Field(i)
			} else {
				v = reflect.ValueOf(s.Locations[0]).Field(i)
			}
			if v.Len() == 0 {
				t.Fatalf("richState leaves %s.%s empty; extend it", typ.Name(), f.Name)
			}
		}
	}
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("Clone differs:\n%+v\n%+v", c, s)
	}
	if shared := sharedSlices(reflect.ValueOf(c), reflect.ValueOf(s), "State"); len(shared) > 0 {
		t.Fatalf("Clone shares %v with the original", shared)
	}
}

// Mutating every slice of the clone leaves the original as it was.
func TestCloneMutationsDoNotLeak(t *testing.T) {
	s := richState(t)
	before := cloneState(s)
	c := s.Clone()
	c.SKU = "other"
	c.Locations[0].ID = "X"
	c.Locations[0].Adjustment[0].Delta = 99
	c.Locations = append(c.Locations[:1], inventory.Location{ID: "Y"})
	c.ChannelRules[0].Sellable = false
	c.SalesCaps[0].Limit = 99
	c.SafetyOverrides[0].Units = 99
	c.Backorder.Limit = 99
	slices.Reverse(c.Locations)
	assertStateEqual(t, s, before, "original after mutating its clone")
	// And the other way round.
	c = s.Clone()
	want := cloneState(c)
	s.Locations[0].Adjustment[0].Delta = -99
	s.ChannelRules[0].Channel = "z"
	s.SalesCaps[0].Channel = "z"
	s.SafetyOverrides[0].Location = "z"
	assertStateEqual(t, c, want, "clone after mutating the original")
}

func TestCloneKeepsNil(t *testing.T) {
	for _, s := range []inventory.State{{}, {SKU: sku}, applyAll(t, inventory.State{}, lvl("WH-1", 1, at(0), 0))} {
		if c := s.Clone(); !reflect.DeepEqual(c, s) {
			t.Errorf("Clone(%+v) = %+v", s, c)
		}
	}
}

// Clone of any reachable state is deep-equal and shares nothing, and Apply
// on the clone gives what Apply on the original gives.
func TestPropertyClone(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 20))
		c := s.Clone()
		if !reflect.DeepEqual(c, s) {
			t.Fatalf("Clone differs:\n%+v\n%+v", c, s)
		}
		if shared := sharedSlices(reflect.ValueOf(c), reflect.ValueOf(s), "State"); len(shared) > 0 {
			t.Fatalf("Clone shares %v", shared)
		}
		ev := genEvent.Draw(t, "event")
		a, _, errA := inventory.Apply(s, ev, t0)
		b, _, errB := inventory.Apply(c, ev, t0)
		if (errA == nil) != (errB == nil) || !reflect.DeepEqual(a, b) {
			t.Fatalf("Apply on the clone differs: %v / %v\n%+v\n%+v", errA, errB, a, b)
		}
	})
}

func TestLocationIDs(t *testing.T) {
	tests := []struct {
		name string
		s    inventory.State
		want []string
	}{
		{"empty", inventory.State{}, nil},
		{"policies only", applyAll(t, inventory.State{}, safety("WH-1", 1, at(0))), nil},
		{"one", applyAll(t, inventory.State{}, lvl("WH-1", 1, at(0), 0)), []string{"WH-1"}},
		{"areas once", applyAll(t, inventory.State{},
			lvlIn("ST-1", inventory.AreaFloor, 1, at(0), 0),
			lvlIn("ST-1", inventory.AreaBackroom, 1, at(0), 0),
			adjIn("a", "ST-1", inventory.AreaWhole, 1, at(0)),
			lvl("A-0", 1, at(0), 0),
			lvl("ST-10", 1, at(0), 0),
			lvlIn("ST-10", inventory.AreaFloor, 1, at(0), 0),
		), []string{"A-0", "ST-1", "ST-10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.LocationIDs(); !slices.Equal(got, tt.want) {
				t.Fatalf("LocationIDs = %v, want %v", got, tt.want)
			}
		})
	}
}

// LocationIDs is the sorted set of the locations' ids.
func TestPropertyLocationIDs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 20))
		var want []string
		for _, l := range s.Locations {
			if !slices.Contains(want, l.ID) {
				want = append(want, l.ID)
			}
		}
		slices.Sort(want)
		if got := s.LocationIDs(); !slices.Equal(got, want) {
			t.Fatalf("LocationIDs = %v, want %v", got, want)
		}
	})
}
