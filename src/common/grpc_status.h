/* grpc_status: gRPC's status codes (the wire values, grpc-go's codes.Code), shared by the gRPC
 * server (src/h2), the gateway codec (src/pbjson) and the v3 API. */
#ifndef CN_COMMON_GRPC_STATUS_H
#define CN_COMMON_GRPC_STATUS_H

enum cn_grpc_status {
    CN_GRPC_OK = 0,
    CN_GRPC_CANCELLED = 1,
    CN_GRPC_UNKNOWN = 2,
    CN_GRPC_INVALID_ARGUMENT = 3,
    CN_GRPC_DEADLINE_EXCEEDED = 4,
    CN_GRPC_NOT_FOUND = 5,
    CN_GRPC_ALREADY_EXISTS = 6,
    CN_GRPC_PERMISSION_DENIED = 7,
    CN_GRPC_RESOURCE_EXHAUSTED = 8,
    CN_GRPC_FAILED_PRECONDITION = 9,
    CN_GRPC_ABORTED = 10,
    CN_GRPC_OUT_OF_RANGE = 11,
    CN_GRPC_UNIMPLEMENTED = 12,
    CN_GRPC_INTERNAL = 13,
    CN_GRPC_UNAVAILABLE = 14,
    CN_GRPC_DATA_LOSS = 15,
    CN_GRPC_UNAUTHENTICATED = 16,
};

#endif
