package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// raceContents is caller i's order under a shared id: three different
// orders, each placed by two or three callers.
func raceContents(id string, i int) *pb.PlaceOrderRequest {
	switch i % 3 {
	case 0:
		return orderReq(id, "web", ol(skuTen, 1))
	case 1:
		return orderReq(id, "web", ol(skuTen, 2))
	}
	return orderReq(id, "marketplace", ol(skuTen, 1))
}

// sameContents reports whether req places the recorded order o (no request
// sets a TTL, so both have the default).
func sameContents(req *pb.PlaceOrderRequest, o *pb.Order) bool {
	if req.GetChannel() != o.GetChannel() || len(req.GetLines()) != len(o.GetLines()) {
		return false
	}
	for i, l := range req.GetLines() {
		if l.GetSku() != o.GetLines()[i].GetSku() || l.GetQuantity() != o.GetLines()[i].GetQuantity() {
			return false
		}
	}
	return true
}

// raceAnswer is one racing caller's answer: the order, or the error's code
// and message (gRPC), or the REST status and body.
type raceAnswer struct {
	order *pb.Order
	code  codes.Code
	msg   string
	http  int
}

// placeREST posts req from any goroutine (no t.Fatal).
func (e *ordEnv) placeREST(req *pb.PlaceOrderRequest) (raceAnswer, error) {
	body, err := protojson.Marshal(req)
	if err != nil {
		return raceAnswer{}, err
	}
	resp, err := e.http.Post(e.base+"/v1/orders", "application/json", bytes.NewReader(body))
	if err != nil {
		return raceAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return raceAnswer{}, err
	}
	a := raceAnswer{http: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		a.order = &pb.Order{}
		return a, protojson.Unmarshal(b, a.order)
	}
	var st struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return a, fmt.Errorf("status %d, body %s: %w", resp.StatusCode, b, err)
	}
	a.code, a.msg = st.Code, st.Message
	return a, nil
}

// Eight callers race to place different orders under one id, five times
// over: exactly those whose order is the one the saga recorded get it; every
// other one gets AlreadyExists / 409 naming the id, never another caller's
// order. Even rounds hold every publish until all eight have published (each
// caller saw no order before publishing, the interleaving the check before
// publishing cannot catch); odd rounds race freely.
func TestPlaceOrderSameIDRace(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	const callers, rounds = 8, 5
	for round := range rounds {
		id := fmt.Sprintf("o-race-%d", round)
		if round%2 == 0 {
			e.bus.setGate(newBarrier(callers))
		}
		answers := make([]raceAnswer, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				req := raceContents(id, i)
				if i%2 == 1 {
					answers[i], errs[i] = e.placeREST(req)
					return
				}
				o, err := e.rs.PlaceOrder(rctx(t), req)
				answers[i] = raceAnswer{order: o, code: status.Code(err), msg: status.Convert(err).Message()}
			})
		}
		wg.Wait()
		e.bus.setGate(nil)
		recorded, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: id})
		if err != nil {
			t.Fatalf("round %d: GetOrder: %v", round, err)
		}
		if st := recorded.GetStatus(); st != pb.OrderStatus_ORDER_STATUS_RESERVED && st != pb.OrderStatus_ORDER_STATUS_REJECTED {
			t.Errorf("round %d: recorded order %v is not final", round, recorded)
		}
		winners := 0
		for i, a := range answers {
			via := "gRPC"
			if i%2 == 1 {
				via = "REST"
			}
			if errs[i] != nil {
				t.Errorf("round %d caller %d (%s): %v", round, i, via, errs[i])
				continue
			}
			if sameContents(raceContents(id, i), recorded) {
				winners++
				if a.order == nil || !proto.Equal(a.order, recorded) {
					t.Errorf("round %d caller %d (%s) placed the recorded order: got %v (%s %q, HTTP %d), want %v",
						round, i, via, a.order, a.code, a.msg, a.http, recorded)
				}
				continue
			}
			if a.code != codes.AlreadyExists || !strings.Contains(a.msg, `"`+id+`"`) || (via == "REST" && a.http != http.StatusConflict) {
				t.Errorf("round %d caller %d (%s) placed a different order: got %v (%s %q, HTTP %d), want AlreadyExists naming %q",
					round, i, via, a.order, a.code, a.msg, a.http, id)
			}
		}
		if winners < 2 {
			t.Errorf("round %d: %d callers got the recorded order; every order was placed by 2 or 3 callers", round, winners)
		}
	}
}

// Orders on a channel that is not configured are refused with its reason,
// InvalidArgument / 400, before anything is published: the bus is stalled
// and the wait bound an hour, so a published order could only end in the
// caller's deadline.
func TestPlaceOrderUnknownChannel(t *testing.T) {
	e := startOrders(t, time.Hour)
	e.bus.setStall(true)
	for _, ch := range []string{"Web", "mobile", "web ", "WEB", "store_pickup"} {
		req := orderReq("o-chan", ch, ol(skuTen, 1), ol(skuOne, 1))
		want := []string{fmt.Sprintf("channel %q is not configured", ch), "marketplace", "store-pickup", "web"}
		if ch == "web " {
			want = []string{`channel "web " has characters outside`} // the id rules come first
		}
		_, err := e.rs.PlaceOrder(rctx(t), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%q over gRPC: %v, want InvalidArgument", ch, err)
		}
		r := e.postOrder(t, req)
		if r.status != http.StatusBadRequest {
			t.Errorf("%q over REST: status %d, want 400: %s", ch, r.status, r.body)
			continue
		}
		b := errorBody(t, r)
		if b.Code != codes.InvalidArgument {
			t.Errorf("%q over REST: %+v", ch, b)
		}
		for _, w := range want {
			if !strings.Contains(status.Convert(err).Message(), w) || !strings.Contains(b.Message, w) {
				t.Errorf("%q: messages %q (gRPC) and %q (REST) do not both say %q", ch, status.Convert(err).Message(), b.Message, w)
			}
		}
	}
	if p, _ := e.bus.counts(); p != 0 || e.bus.heldCount() != 0 {
		t.Errorf("orders on unknown channels were published: %d places, %d requests held", p, e.bus.heldCount())
	}
	if _, found, _ := e.bus.Get("o-chan"); found {
		t.Error("an order on an unknown channel was recorded")
	}
	// Every configured channel is still taken.
	e.bus.setStall(false)
	for i, ch := range channels {
		if _, err := e.rs.PlaceOrder(rctx(t), orderReq(fmt.Sprintf("o-ok-%d", i), ch, ol(skuTen, 1))); err != nil {
			t.Errorf("order on %s: %v", ch, err)
		}
	}
}

// The reservation API takes the configured channels from its Base; a zero
// Base is inventory.DefaultBase(), a broken one an error.
func TestOrdersOptionsBase(t *testing.T) {
	bus := newMemBus(busStates(t)...)
	if _, err := gateway.NewOrders(gateway.OrdersOptions{Bus: bus, Base: inventory.Base{Channels: []string{"bad channel"}, DefaultStaleAfter: time.Hour}}); err == nil ||
		!strings.Contains(err.Error(), "channel") {
		t.Errorf("a base with a malformed channel: %v, want an error naming it", err)
	}
	if _, err := gateway.NewOrders(gateway.OrdersOptions{Bus: bus, Base: inventory.Base{Channels: []string{"web"}}}); err == nil {
		t.Error("a base without a default stale-after: no error")
	}
	// Only web configured: marketplace is refused, web taken.
	rs := reservationServer(t, gateway.OrdersOptions{Bus: bus, Base: inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour}})
	if _, err := rs.PlaceOrder(rctx(t), orderReq("o-m", "marketplace", ol(skuTen, 1))); apierr.Status(err).Code() != codes.InvalidArgument {
		t.Errorf("marketplace with only web configured: %v, want InvalidArgument", err)
	}
	if _, err := rs.PlaceOrder(rctx(t), orderReq("o-w", "web", ol(skuTen, 1))); err != nil {
		t.Errorf("web: %v", err)
	}
	// The default base: its channels are taken, others refused.
	def := reservationServer(t, gateway.OrdersOptions{Bus: bus})
	for _, ch := range inventory.DefaultBase().Channels {
		if _, err := def.PlaceOrder(rctx(t), orderReq("o-def-"+ch, ch, ol(skuTen, 1))); err != nil {
			t.Errorf("%s under the default base: %v", ch, err)
		}
	}
	if _, err := def.PlaceOrder(rctx(t), orderReq("o-def-x", "mobile", ol(skuTen, 1))); apierr.Status(err).Code() != codes.InvalidArgument {
		t.Errorf("mobile under the default base: %v, want InvalidArgument", err)
	}
	if p, _ := bus.counts(); p != 1+len(inventory.DefaultBase().Channels) {
		t.Errorf("%d orders published, want only the %d on configured channels", p, 1+len(inventory.DefaultBase().Channels))
	}
}
