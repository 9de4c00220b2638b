# Helpers for the KVM backend's tests and benchmark: a site CA made with
# the openssl command, swtpm_setup runs, reading a vTPM's NV indexes
# through a swtpm socket with tpm2-tools. Source after common.sh.
# In CI (CI=true) a missing tool is a failure, never a skip.

VTPM_CERTTOOL=${VTPM_CERTTOOL:-$top_builddir/vtpm-certtool}
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so

kvm_require() {
    for _t in swtpm swtpm_setup swtpm_localca tpm2_nvread openssl softhsm2-util; do
        if ! command -v "$_t" >/dev/null 2>&1; then
            [ "${CI:-}" = true ] && fail "$_t is missing (CI=true): run scripts/install-deps.sh"
            echo "SKIP: $_t is missing (scripts/install-deps.sh installs it)"
            exit 77
        fi
    done
    [ -x "$VTPM_CERTTOOL" ] || fail "$VTPM_CERTTOOL not built"
}

kvm_free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# kvm_make_ca DIR: a site root (RSA) and this host's intermediate (ECC
# P-256) signed by it; DIR/chain.pem is the issuer chain vtpm-certtool
# loads, DIR/root.pem what verifiers trust, DIR/ca.conf its config.
kvm_make_ca() {
    _d=$1
    mkdir -p "$_d"
    (
        cd "$_d" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem \
            -subj '/CN=Site vTPM Root CA' -days 3650 \
            -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout int.key -out int.csr -subj '/CN=compute-1 vTPM CA' >/dev/null 2>&1 &&
        printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > ext.cnf &&
        openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial \
            -out int.pem -days 3650 -extfile ext.cnf >/dev/null 2>&1 &&
        chmod 600 int.key root.key && cat int.pem root.pem > chain.pem &&
        printf -- '--platform-manufacturer vtpmd\n--platform-version 2.1\n--platform-model QEMU\n' > opts &&
        cat > ca.conf <<EOC
# vtpm-certtool (swtpm_setup's create_certs_tool_config)
signing_key = $_d/int.key
issuer_chain = $_d/chain.pem
state_dir = $_d/state
host = compute-1.example.org
EOC
    ) || fail "cannot make the test CA in $_d"
}

# kvm_pkcs11_ca DIR: puts DIR's intermediate key into a softhsm2 token
# (DIR/softhsm2.conf; export SOFTHSM2_CONF) and writes DIR/ca11.conf.
kvm_pkcs11_ca() {
    _d=$1
    mkdir -p "$_d/tokens"
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$_d" > "$_d/softhsm2.conf"
    SOFTHSM2_CONF=$_d/softhsm2.conf
    export SOFTHSM2_CONF
    softhsm2-util --init-token --free --label vtpmca --pin 1234 --so-pin 5678 >/dev/null &&
    openssl pkcs8 -topk8 -nocrypt -in "$_d/int.key" -out "$_d/int.p8" &&
    softhsm2-util --import "$_d/int.p8" --token vtpmca --label cakey --id 01 --pin 1234 >/dev/null ||
        fail "cannot make the softhsm2 token"
    rm -f "$_d/int.p8"
    echo 1234 > "$_d/pin"
    chmod 600 "$_d/pin"
    sed "s|^signing_key = .*|signing_key = pkcs11:token=vtpmca;object=cakey;type=private?module-path=$SOFTHSM_MODULE\&pin-source=file:$_d/pin|" \
        "$_d/ca.conf" > "$_d/ca11.conf"
}

# kvm_setup_conf OUT TOOL CONFIG OPTS: a swtpm_setup.conf naming a tool.
kvm_setup_conf() {
    printf 'create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n' \
        "$2" "$3" "$4" > "$1"
}

# kvm_swtpm_setup STATEDIR VMID SETUPCONF LOG [extra args]: what libvirt runs.
kvm_swtpm_setup() {
    _s=$1 _v=$2 _c=$3 _l=$4
    shift 4
    mkdir -p "$_s"
    swtpm_setup --tpm2 --tpmstate "$_s" --vmid "$_v" --createek --create-ek-cert \
        --create-platform-cert --lock-nvram --config "$_c" --logfile "$_l" "$@" \
        >> "$_l" 2>&1
}

# kvm_nvread STATEDIR OUTDIR INDEX...: starts swtpm on the state (loopback,
# a free port P and P+1: tpm2-tss's swtpm TCTI talks to the control
# channel on P+1), reads each NV index into OUTDIR/<index>.der, stops swtpm
# by its pid. KVM_SWTPM_KEY=FILE: the state is encrypted (as Nova asks
# libvirt to) with a key derived from the passphrase in FILE.
kvm_nvread() {
    _s=$1 _o=$2
    shift 2
    # P+1 may be taken even though P was free: then swtpm exits, and we
    # try other ports.
    _try=0
    while :; do
        _try=$((_try + 1))
        [ $_try -gt 5 ] && fail "swtpm did not start on 5 port pairs (see $_o/swtpm.log)"
        _p=$(kvm_free_port)
        _c=$((_p + 1))
        swtpm socket --tpm2 --tpmstate dir="$_s" \
            ${KVM_SWTPM_KEY:+--key pwdfile="$KVM_SWTPM_KEY",mode=aes-256-cbc} \
            --server type=tcp,port="$_p",bindaddr=127.0.0.1 \
            --ctrl type=tcp,port="$_c",bindaddr=127.0.0.1 \
            --flags not-need-init,startup-clear --pid file="$_o/swtpm.pid" \
            --log file="$_o/swtpm.log" &
        KVM_SWTPM_PID=$!
        if [ -z "${KVM_CLEANUP_SET:-}" ]; then
            add_cleanup kvm_swtpm_stop
            KVM_CLEANUP_SET=1
        fi
        _i=0
        while kill -0 "$KVM_SWTPM_PID" 2>/dev/null &&
              ! tpm2_getcap -T "swtpm:host=127.0.0.1,port=$_p" properties-fixed >/dev/null 2>&1; do
            _i=$((_i + 1))
            [ $_i -gt 100 ] && fail "swtpm did not answer on port $_p"
            sleep 0.1
        done
        kill -0 "$KVM_SWTPM_PID" 2>/dev/null && break
        wait "$KVM_SWTPM_PID" 2>/dev/null
        KVM_SWTPM_PID=
    done
    for _n in "$@"; do
        tpm2_nvread -T "swtpm:host=127.0.0.1,port=$_p" "$_n" -o "$_o/$_n.der" \
            >> "$_o/nvread.log" 2>&1 || fail "tpm2_nvread $_n failed"
    done
    # KVM_READPUB="0x81010001 ...": the EKs' public keys, OUTDIR/<handle>.pem
    for _n in ${KVM_READPUB:-}; do
        tpm2_readpublic -T "swtpm:host=127.0.0.1,port=$_p" -c "$_n" -f pem -o "$_o/$_n.pem" \
            >> "$_o/nvread.log" 2>&1 || fail "tpm2_readpublic $_n failed"
    done
    kvm_swtpm_stop
}

kvm_swtpm_stop() {
    if [ -n "${KVM_SWTPM_PID:-}" ]; then
        kill "$KVM_SWTPM_PID" 2>/dev/null
        wait "$KVM_SWTPM_PID" 2>/dev/null
        KVM_SWTPM_PID=
    fi
    return 0
}
