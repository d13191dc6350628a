// The test bed's git server: Git's own smart HTTP (git http-backend) behind Go's CGI handler, on
// loopback. Standard library only.
module foundry-gateway-operator/tests/tools/gitserver

go 1.26.0
