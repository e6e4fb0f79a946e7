// Small standard-library helpers for the test control plane: the throw-away PKI and the process tether.
module xs-kubelet.dev/controlplane/util

go 1.24.0
