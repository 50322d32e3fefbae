/* A leg's conference port in C: frames cross threads through two rings (see ring_port.py).
 *
 * pjmedia's clock thread calls put_frame (audio from the call) and get_frame
 * (audio to the call) of every port in the conference bridge every 20 ms. A
 * pjsua2 AudioMediaPort answers those calls in Python, taking the GIL twice
 * per frame on a thread that then waits for it beside the worker's event
 * loop. This port answers them in C: the clock thread only copies a frame
 * into or out of a ring under a mutex, never touching Python; the event loop
 * reads and writes the rings with the GIL held, the mutex taken briefly.
 *
 * A full ring drops its oldest frame (a stalled reader never grows memory);
 * an empty send ring gives the call silence.
 *
 * pjmedia's structures are declared here as in pjproject 2.15's headers (the
 * wheel ships none). The layout is checked when a port is made: pjmedia's
 * own pjmedia_port_get_frame and pjmedia_port_put_frame must reach this
 * port's functions, and pjmedia_port_info_init's format must read back.
 * pjsua's symbols come from pjsua2's extension module, already loaded by
 * the worker (dlopen with RTLD_NOLOAD; nothing is loaded twice).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ---- pjproject 2.15 declarations (pj_str_t, pjmedia_port, pjmedia_frame) */

typedef struct {
    char *ptr;
    long slen;
} pj_str_t;

typedef struct {
    uint32_t id;
    int type;
    int detail_type;
    union {
        struct {
            unsigned clock_rate, channel_count, frame_time_usec, bits_per_sample;
            uint32_t avg_bps, max_bps;
        } aud;
        char other[24]; /* the video detail: same size */
    } det;
} pjmedia_format;

typedef struct {
    pj_str_t name;
    uint32_t signature;
    int dir;
    pjmedia_format fmt;
} pjmedia_port_info;

typedef struct {
    int type;
    void *buf;
    size_t size;
    uint64_t timestamp;
    uint32_t bit_info;
} pjmedia_frame;

typedef struct pjmedia_port {
    pjmedia_port_info info;
    struct {
        void *pdata;
        long ldata;
    } port_data;
    void *grp_lock;
    void *(*get_clock_src)(struct pjmedia_port *, int);
    int (*put_frame)(struct pjmedia_port *, pjmedia_frame *);
    int (*get_frame)(struct pjmedia_port *, pjmedia_frame *);
    int (*on_destroy)(struct pjmedia_port *);
} pjmedia_port;

enum { FRAME_NONE = 0, FRAME_AUDIO = 1 };

typedef int (*info_init_fn)(pjmedia_port_info *, const pj_str_t *, unsigned, unsigned, unsigned,
                            unsigned, unsigned);
typedef int (*port_frame_fn)(pjmedia_port *, pjmedia_frame *);
typedef void *(*pool_create_fn)(const char *, size_t, size_t);
typedef void (*pool_release_fn)(void *);
typedef int (*add_port_fn)(void *, pjmedia_port *, int *);
typedef int (*slot_fn)(int);
typedef int (*connect_fn)(int, int);

static struct {
    int bound;
    info_init_fn info_init;
    port_frame_fn get_frame, put_frame;
    pool_create_fn pool_create;
    pool_release_fn pool_release;
    add_port_fn add_port;
    slot_fn remove_port;
    connect_fn connect, disconnect;
} pj;

/* ---- the port: rings of whole frames under one mutex */

#define SIGNATURE 0x52505452u /* "RPTR" */
#define CLOCK_RATE 16000
#define FRAME_SAMPLES 320 /* 20 ms at the internal rate */
#define FRAME_BYTES (FRAME_SAMPLES * 2)

typedef struct {
    unsigned char *frames;
    int head, count;
} ring;

typedef struct {
    pjmedia_port base; /* first: pjmedia holds a pjmedia_port pointer */
    pthread_mutex_t lock;
    int capacity;
    ring received, to_send;
    int probed; /* the layout check's marks: 1 get_frame, 2 put_frame */
    char name[32];
} ring_port;

static void ring_push(ring *r, int capacity, const void *frame) {
    int tail = (r->head + r->count) % capacity;
    memcpy(r->frames + (size_t)tail * FRAME_BYTES, frame, FRAME_BYTES);
    if (r->count == capacity) {
        r->head = (r->head + 1) % capacity; /* the oldest is dropped */
    } else {
        r->count++;
    }
}

static int ring_pop(ring *r, int capacity, void *frame) {
    if (r->count == 0) {
        return 0;
    }
    memcpy(frame, r->frames + (size_t)r->head * FRAME_BYTES, FRAME_BYTES);
    r->head = (r->head + 1) % capacity;
    r->count--;
    return 1;
}

/* Clock thread: audio from the call. */
static int port_put_frame(pjmedia_port *base, pjmedia_frame *frame) {
    ring_port *port = (ring_port *)base;
    if (port->probed >= 0) {
        port->probed |= 2;
        return 0;
    }
    if (frame->type == FRAME_AUDIO && frame->size == FRAME_BYTES) {
        pthread_mutex_lock(&port->lock);
        ring_push(&port->received, port->capacity, frame->buf);
        pthread_mutex_unlock(&port->lock);
    }
    return 0;
}

/* Clock thread: audio to the call, silence when nothing is queued. */
static int port_get_frame(pjmedia_port *base, pjmedia_frame *frame) {
    ring_port *port = (ring_port *)base;
    if (port->probed >= 0) {
        port->probed |= 1;
        return 0;
    }
    if (frame->size < FRAME_BYTES) {
        frame->type = FRAME_NONE;
        frame->size = 0;
        return 0;
    }
    pthread_mutex_lock(&port->lock);
    int got = ring_pop(&port->to_send, port->capacity, frame->buf);
    pthread_mutex_unlock(&port->lock);
    if (!got) {
        memset(frame->buf, 0, FRAME_BYTES);
    }
    frame->type = FRAME_AUDIO;
    frame->size = FRAME_BYTES;
    frame->bit_info = 0;
    return 0;
}

/* ---- the Python object */

enum { NEW, IN_BRIDGE, REMOVING, LET_GO };

typedef struct {
    PyObject_HEAD ring_port *port;
    int slot;
    int state;
} PortObject;

static int bind_pjsua(const char *library) {
    if (pj.bound) {
        return 0;
    }
    void *handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) {
        PyErr_Format(PyExc_RuntimeError, "pjsua2 is not loaded: %s", dlerror());
        return -1;
    }
    pj.info_init = (info_init_fn)dlsym(handle, "pjmedia_port_info_init");
    pj.get_frame = (port_frame_fn)dlsym(handle, "pjmedia_port_get_frame");
    pj.put_frame = (port_frame_fn)dlsym(handle, "pjmedia_port_put_frame");
    pj.pool_create = (pool_create_fn)dlsym(handle, "pjsua_pool_create");
    pj.pool_release = (pool_release_fn)dlsym(handle, "pj_pool_release");
    pj.add_port = (add_port_fn)dlsym(handle, "pjsua_conf_add_port");
    pj.remove_port = (slot_fn)dlsym(handle, "pjsua_conf_remove_port");
    pj.connect = (connect_fn)dlsym(handle, "pjsua_conf_connect");
    pj.disconnect = (connect_fn)dlsym(handle, "pjsua_conf_disconnect");
    dlclose(handle); /* pjsua2's module stays loaded: the worker imported it */
    if (!pj.info_init || !pj.get_frame || !pj.put_frame || !pj.pool_create || !pj.pool_release ||
        !pj.add_port || !pj.remove_port || !pj.connect || !pj.disconnect) {
        PyErr_SetString(PyExc_RuntimeError, "pjsua2's module lacks a pjmedia or pjsua symbol");
        return -1;
    }
    pj.bound = 1;
    return 0;
}

/* pjmedia must reach this port's functions through its own dispatch. */
static int layout_ok(ring_port *port) {
    const pjmedia_format *fmt = &port->base.info.fmt;
    if (fmt->det.aud.clock_rate != CLOCK_RATE || fmt->det.aud.channel_count != 1 ||
        fmt->det.aud.bits_per_sample != 16 || port->base.info.signature != SIGNATURE) {
        return 0;
    }
    unsigned char scratch[FRAME_BYTES];
    pjmedia_frame frame = {FRAME_NONE, scratch, FRAME_BYTES, 0, 0};
    port->probed = 0;
    pj.get_frame(&port->base, &frame);
    int got = port->probed;
    port->probed = 0;
    pj.put_frame(&port->base, &frame);
    int put = port->probed;
    port->probed = -1;
    return got == 1 && put == 2;
}

static int Port_init(PortObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"library", "name", "frames", NULL};
    const char *library, *name;
    int frames;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ssi", keywords, &library, &name, &frames)) {
        return -1;
    }
    if (self->port != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the port is already made");
        return -1;
    }
    if (frames < 1 || frames > 500) {
        PyErr_SetString(PyExc_ValueError, "a ring holds 1-500 frames");
        return -1;
    }
    if (bind_pjsua(library) < 0) {
        return -1;
    }
    ring_port *port = calloc(1, sizeof *port);
    unsigned char *buffers = calloc(2 * (size_t)frames, FRAME_BYTES);
    if (port == NULL || buffers == NULL) {
        free(port);
        free(buffers);
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&port->lock, NULL);
    port->capacity = frames;
    port->received.frames = buffers;
    port->to_send.frames = buffers + (size_t)frames * FRAME_BYTES;
    snprintf(port->name, sizeof port->name, "%s", name);
    pj_str_t pj_name = {port->name, (long)strlen(port->name)};
    pj.info_init(&port->base.info, &pj_name, SIGNATURE, CLOCK_RATE, 1, 16, FRAME_SAMPLES);
    port->base.put_frame = port_put_frame;
    port->base.get_frame = port_get_frame;
    self->port = port;
    self->slot = -1;
    self->state = NEW;
    if (!layout_ok(port)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pjmedia's port layout is not pjproject 2.15's; the Python port is needed");
        return -1;
    }
    return 0;
}

static void Port_dealloc(PortObject *self) {
    ring_port *port = self->port;
    /* pjmedia may still call a port in the bridge (or read it when the bridge
     * is destroyed): only a port never added, or let go, is freed. */
    if (port != NULL && (self->state == NEW || self->state == LET_GO)) {
        pthread_mutex_destroy(&port->lock);
        free(port->received.frames);
        free(port);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PortObject *live(PyObject *self) {
    PortObject *port = (PortObject *)self;
    if (port->port == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the port was not made");
        return NULL;
    }
    return port;
}

static PyObject *Port_add(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    if (port->state != NEW) {
        PyErr_SetString(PyExc_RuntimeError, "the port was already added to the bridge");
        return NULL;
    }
    void *pool = pj.pool_create(port->port->name, 512, 512);
    if (pool == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pjsua has no pool for the port (not started?)");
        return NULL;
    }
    int slot = -1;
    /* The bridge takes only the pool's factory: its slot gets a pool of its own. */
    int status = pj.add_port(pool, &port->port->base, &slot);
    pj.pool_release(pool);
    if (status != 0 || slot < 0) {
        PyErr_Format(PyExc_RuntimeError, "the conference bridge refused the port (status %d)", status);
        return NULL;
    }
    port->slot = slot;
    port->state = IN_BRIDGE;
    return PyLong_FromLong(slot);
}

static PyObject *Port_get_port_id(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    return port == NULL ? NULL : PyLong_FromLong(port->slot);
}

static PyObject *link_slots(PyObject *self, PyObject *arg, connect_fn fn, const char *what) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    long call_slot = PyLong_AsLong(arg);
    if (call_slot == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (port->state != IN_BRIDGE) {
        PyErr_Format(PyExc_RuntimeError, "cannot %s a port not in the bridge", what);
        return NULL;
    }
    int to_port = fn((int)call_slot, port->slot);
    int to_call = fn(port->slot, (int)call_slot);
    if (to_port != 0 || to_call != 0) {
        PyErr_Format(PyExc_RuntimeError, "the bridge would not %s slots %ld and %d (status %d, %d)",
                     what, call_slot, port->slot, to_port, to_call);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Port_connect(PyObject *self, PyObject *arg) {
    return link_slots(self, arg, pj.connect, "connect");
}

static PyObject *Port_disconnect(PyObject *self, PyObject *arg) {
    return link_slots(self, arg, pj.disconnect, "disconnect");
}

static PyObject *Port_remove(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    if (port->state == IN_BRIDGE) {
        pj.remove_port(port->slot); /* queued: pjmedia removes it on its next tick */
        port->state = REMOVING;
    }
    Py_RETURN_NONE;
}

static PyObject *Port_let_go(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    if (port->state == REMOVING) {
        port->state = LET_GO;
    }
    Py_RETURN_NONE;
}

static PyObject *Port_read(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    PyObject *frame = PyBytes_FromStringAndSize(NULL, FRAME_BYTES);
    if (frame == NULL) {
        return NULL;
    }
    ring_port *p = port->port;
    pthread_mutex_lock(&p->lock);
    int got = ring_pop(&p->received, p->capacity, PyBytes_AS_STRING(frame));
    pthread_mutex_unlock(&p->lock);
    if (!got) {
        Py_DECREF(frame);
        Py_RETURN_NONE;
    }
    return frame;
}

static PyObject *Port_write(PyObject *self, PyObject *arg) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len != FRAME_BYTES) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "a frame is %d bytes, not %zd", FRAME_BYTES, view.len);
        return NULL;
    }
    ring_port *p = port->port;
    pthread_mutex_lock(&p->lock);
    ring_push(&p->to_send, p->capacity, view.buf);
    pthread_mutex_unlock(&p->lock);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *Port_queued(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&port->port->lock);
    int count = port->port->to_send.count;
    pthread_mutex_unlock(&port->port->lock);
    return PyLong_FromLong(count);
}

static PyObject *Port_clear(PyObject *self, PyObject *unused) {
    PortObject *port = live(self);
    if (port == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&port->port->lock);
    port->port->received.count = 0;
    port->port->to_send.count = 0;
    pthread_mutex_unlock(&port->port->lock);
    Py_RETURN_NONE;
}

static PyMethodDef Port_methods[] = {
    {"add", Port_add, METH_NOARGS, "Add the port to pjsua's conference bridge; its slot."},
    {"getPortId", Port_get_port_id, METH_NOARGS, "The port's bridge slot (-1 before add)."},
    {"connect", Port_connect, METH_O, "Frames both ways between the port and a call's slot."},
    {"disconnect", Port_disconnect, METH_O, "Stop frames both ways with a call's slot."},
    {"remove", Port_remove, METH_NOARGS, "Queue the port's removal from the bridge."},
    {"let_go", Port_let_go, METH_NOARGS, "The bridge let go of the slot: the port may be freed."},
    {"read", Port_read, METH_NOARGS, "The oldest frame from the call, or None."},
    {"write", Port_write, METH_O, "Queue one frame to the call (the oldest is dropped when full)."},
    {"queued", Port_queued, METH_NOARGS, "Frames waiting to be sent to the call."},
    {"clear", Port_clear, METH_NOARGS, "Drop every frame in both rings."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PortType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "assistline.sip._ring_port.Port",
    .tp_basicsize = sizeof(PortObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A 16 kHz, 20 ms conference port whose frames cross threads through rings.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Port_init,
    .tp_dealloc = (destructor)Port_dealloc,
    .tp_methods = Port_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ring_port", "A leg's conference port in C (see ring_port.py).", -1,
    NULL,
};

PyMODINIT_FUNC PyInit__ring_port(void) {
    if (PyType_Ready(&PortType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&PortType);
    if (PyModule_AddObject(m, "Port", (PyObject *)&PortType) < 0) {
        Py_DECREF(&PortType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "FRAME_BYTES", FRAME_BYTES);
    return m;
}
