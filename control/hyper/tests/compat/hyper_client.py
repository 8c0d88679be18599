"""A peer built from the unmodified original hyper.proto (grpcio), driving Tandem's gRPC server.

usage: hyper_client.py <stubs dir> <call|reverse> <addr> <server name> <root.crt> <client.crt> <client.key> [calls]

call:    one /Hyper/Call as hd-1; prints {"response": <Response as JSON>}.
reverse: opens /Hyper/ServerCall, announces "hd-1", prints {"announced": true} once the stream is
         open, answers <calls> pushed requests (echoing method, params and clientName), then prints
         {"served": <n>}.
"""
import json
import os
import queue
import sys


def main():
    stubs, mode, addr, server_name, root, cert, key = sys.argv[1:8]
    sys.path.insert(0, stubs)
    import grpc
    import hyper_original_pb2 as pb
    import hyper_original_pb2_grpc as rpc
    from google.protobuf import json_format

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(
        root_certificates=read(root), private_key=read(key), certificate_chain=read(cert)
    )
    channel = grpc.secure_channel(addr, creds, options=[("grpc.ssl_target_name_override", server_name)])
    stub = rpc.HyperStub(channel)

    if mode == "call":
        request = pb.Request(method="hd-2.echo", id="hd-2.echo(py-1)", clientName="hd-1")
        request.params.update({"x": 1, "list": [True, None, "s"], "nested": {"k": "v"}})
        response = stub.Call(request, timeout=10)
        out = {"response": json_format.MessageToDict(response, preserving_proto_field_name=True)}
    else:
        calls = int(sys.argv[8])
        outbox = queue.Queue()

        def responses():
            announcement = pb.Response(id="1")
            announcement.result.update({"name": "hd-1"})
            yield announcement
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        pushed = stub.ServerCall(responses(), timeout=30)
        print(json.dumps({"announced": True}), flush=True)
        served = 0
        for request in pushed:
            reply = pb.Response(id=request.id)
            reply.result.update({
                "method": request.method,
                "clientName": request.clientName,
                "params": json_format.MessageToDict(request.params),
            })
            outbox.put(reply)
            served += 1
            if served >= calls:
                break
        outbox.put(None)
        # Keep the process (and the stream) alive until the test has read every answer.
        sys.stdin.read()
        out = {"served": served}
    print(json.dumps(out), flush=True)
    channel.close()
    os._exit(0)


if __name__ == "__main__":
    main()
