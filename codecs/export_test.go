package codecs

// DecodeSupplyGeneric is the protobuf-message path of DecodeSupplyEvent.
var DecodeSupplyGeneric = decodeSupplyGeneric
