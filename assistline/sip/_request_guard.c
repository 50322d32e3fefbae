/* A pjsip module that refuses requests pjsip would take as whole when they are not (see
 * request_guard.py), and drops responses cut off by the read buffer.
 *
 * It sits just ahead of pjsip's transaction layer, so a refused request never
 * starts a transaction, a dialog or a call; the answer is sent statelessly.
 *
 * pjsip's structures are declared here as in pjproject 2.15's headers (the
 * wheel ships none), only as far as the fields read. install() checks the
 * layout before registering: it has pjsip's own parser (pjsip_parse_rdata)
 * fill an rx_data of this layout from a known request and reads the fields
 * back. Each request is checked again cheaply (its text lies inside its own
 * packet buffer, whose terminator is zero). pjsip's symbols come from
 * pjsua2's extension module, already loaded by the worker (dlopen with
 * RTLD_NOLOAD; nothing is loaded twice).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- pjproject 2.15 declarations */

typedef struct {
    char *ptr;
    long slen;
} pj_str_t;

/* PJSIP_MAX_PKT_LEN: the UDP read buffer, and so the longest datagram read whole. */
#define MAX_PACKET 4000

typedef struct {
    int id;
    pj_str_t name;
} sip_method;

/* PJSIP_DECL_HDR_MEMBER */
typedef struct {
    void *prev, *next;
    int type;
    pj_str_t name, sname;
    void *vptr;
} sip_hdr;

typedef struct {
    sip_hdr hdr;
    int32_t cseq;
    sip_method method;
} sip_cseq_hdr;

typedef struct {
    sip_hdr hdr;
    int len;
} sip_clen_hdr;

enum { REQUEST_MSG = 0, RESPONSE_MSG = 1 };

typedef struct {
    int type;
    /* The request line (the union's larger member). */
    sip_method method;
    void *uri;
} sip_msg;

typedef struct {
    void *prev, *next;
    int except_code, line, col;
    pj_str_t hname;
} parser_err_report;

typedef struct {
    struct {
        void *pool, *transport, *tp_data;
        struct {
            void *internal[32], *activesock_data, *user_data; /* pj_ioqueue_op_key_t */
            void *rdata;
        } op_key;
    } tp_info;
    struct {
        long sec, msec;
        char packet[MAX_PACKET];
        uint32_t zero;
        long len;
        uint32_t src_addr[7]; /* pj_sockaddr: 28 bytes, 4-aligned */
        int src_addr_len;
        char src_name[46];
        int src_port;
    } pkt_info;
    struct {
        char *msg_buf;
        int len;
        sip_msg *msg;
        char *info;
        void *cid, *from, *to, *via;
        sip_cseq_hdr *cseq;
        void *max_fwd, *route, *record_route, *ctype;
        sip_clen_hdr *clen;
        void *require, *supported;
        parser_err_report parse_err;
    } msg_info;
    /* endpt_info and whatever a later version adds: never touched here. */
} rx_data;

typedef struct sip_module {
    struct sip_module *prev, *next;
    pj_str_t name;
    int id, priority;
    int (*load)(void *endpt);
    int (*start)(void);
    int (*stop)(void);
    int (*unload)(void);
    int (*on_rx_request)(rx_data *rdata);
    int (*on_rx_response)(rx_data *rdata);
    int (*on_tx_request)(void *tdata);
    int (*on_tx_response)(void *tdata);
    void (*on_tsx_state)(void *tsx, void *event);
} sip_module;

/* PJSIP_MOD_PRIORITY_TSX_LAYER - 1: ahead of transactions, dialogs and pjsua. */
#define PRIORITY 15

typedef void *(*get_endpt_fn)(void);
typedef int (*register_fn)(void *endpt, sip_module *module);
typedef int (*respond_fn)(void *endpt, rx_data *rdata, int code, const pj_str_t *text,
                          const void *headers, const void *body);
typedef sip_msg *(*parse_fn)(char *buf, size_t size, rx_data *rdata);
typedef void *(*create_pool_fn)(void *endpt, const char *name, size_t initial, size_t increment);
typedef void (*release_pool_fn)(void *endpt, void *pool);

static respond_fn respond;
static void *endpoint;

/* What was refused or dropped, by reason; read by stats(). */
static unsigned long truncated, cseq_mismatch, body_short, truncated_responses, unchecked;

static int same(const pj_str_t *a, const char *b) {
    size_t n = strlen(b);
    return a->ptr != NULL && a->slen == (long)n && memcmp(a->ptr, b, n) == 0;
}

/* The request's own text lies inside its packet buffer: the layout holds for it. */
static int readable(const rx_data *rd, int type) {
    const char *start = rd->pkt_info.packet;
    const char *text = rd->msg_info.msg_buf;
    return rd->pkt_info.zero == 0 && rd->pkt_info.len > 0 && rd->pkt_info.len <= MAX_PACKET &&
           text >= start && rd->msg_info.len > 0 &&
           text + rd->msg_info.len <= start + rd->pkt_info.len && rd->msg_info.msg != NULL &&
           rd->msg_info.msg->type == type;
}

/* Bytes after the blank line that ends the headers (0 when there is none). */
static long body_length(const char *text, long len) {
    for (long i = 0; i + 1 < len; i++) {
        if (text[i] != '\n') {
            continue;
        }
        if (text[i + 1] == '\n') {
            return len - (i + 2);
        }
        if (i + 2 < len && text[i + 1] == '\r' && text[i + 2] == '\n') {
            return len - (i + 3);
        }
    }
    return 0;
}

static int refuse(rx_data *rd, int code, const char *reason, unsigned long *count) {
    (*count)++;
    if (!same(&rd->msg_info.msg->method.name, "ACK")) {
        pj_str_t text = {(char *)reason, (long)strlen(reason)};
        respond(endpoint, rd, code, &text, NULL, NULL);
    }
    return 1; /* handled: pjsip passes it to no other module */
}

static int on_rx_request(rx_data *rd) {
    if (!readable(rd, REQUEST_MSG)) {
        unchecked++;
        return 0;
    }
    /* The datagram filled the read buffer: what followed was cut off, and the
     * prefix parsed as if it were the whole message (RFC 3261 18.3). */
    if (rd->pkt_info.len >= MAX_PACKET) {
        return refuse(rd, 513, "Message Too Large", &truncated);
    }
    /* RFC 3261 8.1.1.5: the CSeq method matches the request's. */
    const sip_cseq_hdr *cseq = rd->msg_info.cseq;
    if (cseq != NULL && (cseq->method.name.slen != rd->msg_info.msg->method.name.slen ||
                         memcmp(cseq->method.name.ptr, rd->msg_info.msg->method.name.ptr,
                                (size_t)cseq->method.name.slen) != 0)) {
        return refuse(rd, 400, "CSeq Method Mismatch", &cseq_mismatch);
    }
    /* RFC 3261 18.3: a datagram shorter than its Content-Length says is refused. */
    const sip_clen_hdr *clen = rd->msg_info.clen;
    if (clen != NULL && clen->len > body_length(rd->msg_info.msg_buf, rd->msg_info.len)) {
        return refuse(rd, 400, "Body Shorter Than Content-Length", &body_short);
    }
    return 0;
}

#define GUARD_NAME "mod-assistline-request-guard"

/* A response cut off at the buffer is dropped, as if lost: the peer's
 * retransmission meets the same fate, and the transaction times out rather
 * than going on with a message that was never sent (an answer missing its SDP). */
static int on_rx_response(rx_data *rd) {
    if (!readable(rd, RESPONSE_MSG)) {
        unchecked++;
        return 0;
    }
    if (rd->pkt_info.len >= MAX_PACKET) {
        truncated_responses++;
        return 1;
    }
    return 0;
}

static sip_module guard = {
    .name = {GUARD_NAME, sizeof GUARD_NAME - 1},
    .id = -1,
    .priority = PRIORITY,
    .on_rx_request = on_rx_request,
    .on_rx_response = on_rx_response,
};

/* pjsip's parser fills an rx_data of this layout; the fields must read back. */
static const char *check_layout(parse_fn parse, create_pool_fn create_pool,
                                release_pool_fn release_pool) {
    static char known[] = "OPTIONS sip:guard@127.0.0.1 SIP/2.0\r\n"
                          "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-guard\r\n"
                          "From: <sip:guard@127.0.0.1>;tag=1\r\n"
                          "To: <sip:guard@127.0.0.1>\r\n"
                          "Call-ID: guard-layout\r\n"
                          "CSeq: 7 REGISTER\r\n"
                          "Content-Length: 3\r\n"
                          "\r\n"
                          "abc";
    /* Room for the fields of a later layout past ours: pjsip writes only what it knows. */
    rx_data *rd = calloc(1, sizeof(rx_data) + 4096);
    if (rd == NULL) {
        return "out of memory";
    }
    void *pool = create_pool(endpoint, "request-guard", 4000, 4000);
    if (pool == NULL) {
        free(rd);
        return "pjsip gave no memory pool";
    }
    rd->tp_info.pool = pool;
    rd->msg_info.parse_err.prev = rd->msg_info.parse_err.next = &rd->msg_info.parse_err;
    sip_msg *msg = parse(known, sizeof known - 1, rd);
    const char *wrong = NULL;
    if (msg == NULL || msg != rd->msg_info.msg || msg->type != REQUEST_MSG) {
        wrong = "the parsed message is not where it was expected";
    } else if (!same(&msg->method.name, "OPTIONS")) {
        wrong = "the request line's method does not read back";
    } else if (rd->msg_info.cseq == NULL || rd->msg_info.cseq->cseq != 7 ||
               !same(&rd->msg_info.cseq->method.name, "REGISTER") ||
               !same(&rd->msg_info.cseq->hdr.name, "CSeq")) {
        wrong = "the CSeq header does not read back";
    } else if (rd->msg_info.clen == NULL || rd->msg_info.clen->len != 3 ||
               !same(&rd->msg_info.clen->hdr.name, "Content-Length")) {
        wrong = "the Content-Length header does not read back";
    }
    release_pool(endpoint, pool);
    free(rd);
    return wrong;
}

static PyObject *install(PyObject *self, PyObject *args) {
    const char *library;
    if (!PyArg_ParseTuple(args, "s", &library)) {
        return NULL;
    }
    void *handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) {
        PyErr_Format(PyExc_RuntimeError, "pjsua2 is not loaded: %s", dlerror());
        return NULL;
    }
    get_endpt_fn get_endpt = (get_endpt_fn)dlsym(handle, "pjsua_get_pjsip_endpt");
    register_fn register_module = (register_fn)dlsym(handle, "pjsip_endpt_register_module");
    respond_fn respond_fn_ = (respond_fn)dlsym(handle, "pjsip_endpt_respond_stateless");
    parse_fn parse = (parse_fn)dlsym(handle, "pjsip_parse_rdata");
    create_pool_fn create_pool = (create_pool_fn)dlsym(handle, "pjsip_endpt_create_pool");
    release_pool_fn release_pool = (release_pool_fn)dlsym(handle, "pjsip_endpt_release_pool");
    dlclose(handle); /* pjsua2's module stays loaded: the worker imported it */
    if (!get_endpt || !register_module || !respond_fn_ || !parse || !create_pool || !release_pool) {
        PyErr_SetString(PyExc_RuntimeError, "pjsua2's module lacks a pjsip symbol");
        return NULL;
    }
    void *endpt = get_endpt();
    if (endpt == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pjsua has no SIP endpoint yet (before libCreate?)");
        return NULL;
    }
    if (guard.id >= 0 && endpt == endpoint) {
        Py_RETURN_NONE; /* already on this endpoint */
    }
    endpoint = endpt;
    respond = respond_fn_;
    const char *wrong = check_layout(parse, create_pool, release_pool);
    if (wrong != NULL) {
        PyErr_Format(PyExc_RuntimeError, "pjsip's rx_data is not laid out as in pjproject 2.15: %s",
                     wrong);
        return NULL;
    }
    /* An earlier endpoint in this process unregistered the module as it was
     * destroyed (pjsip sets id back to -1). */
    guard.prev = guard.next = NULL;
    int status = register_module(endpt, &guard);
    if (status != 0) {
        PyErr_Format(PyExc_RuntimeError, "pjsip refused the request guard (status %d)", status);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *stats(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:k,s:k,s:k,s:k,s:k}", "truncated", truncated, "cseq_mismatch",
                         cseq_mismatch, "body_short", body_short, "truncated_responses",
                         truncated_responses, "unchecked", unchecked);
}

static PyMethodDef methods[] = {
    {"install", install, METH_VARARGS,
     "install(library): check pjsip's layout and register the guard (pjsua2 thread)."},
    {"stats", stats, METH_NOARGS,
     "stats(): requests refused and responses dropped, by reason, and those left unchecked."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_request_guard", "Refuses SIP requests pjsip read only in part.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__request_guard(void) { return PyModule_Create(&module); }
