package codecs

// DecodeSupplyGeneric is the protobuf-message path of DecodeSupplyEvent.
var DecodeSupplyGeneric = decodeSupplyGeneric

// SizeBound and MaxRecordBytes are CheckStateGrowth's shortcut.
var SizeBound = sizeBound

const MaxRecordBytes = maxRecordBytes
