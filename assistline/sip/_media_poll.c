/* Polls pjmedia's RTP I/O queue from a thread of our own (see media_poll.py).
 *
 * pjmedia's endpoint thread polls its I/O queue with a fixed 10 ms timeout:
 * 100 wake-ups a second in every worker, busy or idle. pjsua always starts
 * one (it turns threadCnt 0 into 1), so start() stops it with pjmedia's own
 * pjmedia_endpt_stop_threads and polls the same queue with a timeout the
 * caller chooses. The thread is C so that it never takes the GIL: it only
 * calls pj_ioqueue_poll, whose callbacks (RTP and RTCP into pjmedia's
 * streams) are C too.
 *
 * pjlib's symbols come from pjsua2's extension module, already loaded by the
 * worker (dlopen with RTLD_NOLOAD finds it; nothing is loaded twice).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

/* pjlib's pj_time_val and pj_thread_desc (PJ_THREAD_DESC_SIZE longs). */
typedef struct {
    long sec;
    long msec;
} pj_time_val;
typedef long pj_thread_desc[64];

typedef int (*poll_fn)(void *ioqueue, const pj_time_val *timeout);
typedef int (*register_fn)(const char *name, pj_thread_desc desc, void **thread);
typedef void *(*endpt_fn)(void);
typedef void *(*ioqueue_fn)(void *endpt);
typedef int (*stop_threads_fn)(void *endpt);

static poll_fn pj_poll;
static register_fn pj_register;
static void *ioqueue;
static long timeout_ms;
static pthread_t thread;
static int running;
static atomic_int stopping;
static atomic_int started; /* 0 while registering, 1 polling, -1 pjlib refused */
static pj_thread_desc descriptor;

static void *poll_loop(void *unused) {
    (void)unused;
    void *registered = NULL;
    /* A descriptor left from an earlier poller (an earlier endpoint in this
     * process) still carries pjlib's signature: pjlib would take this as a
     * second registration of that thread and abort. */
    memset(descriptor, 0, sizeof descriptor);
    if (pj_register("media-poll", descriptor, &registered) != 0) {
        atomic_store(&started, -1);
        return NULL;
    }
    atomic_store(&started, 1);
    pj_time_val timeout = {timeout_ms / 1000, timeout_ms % 1000};
    while (!atomic_load(&stopping)) {
        pj_poll(ioqueue, &timeout);
    }
    return NULL;
}

static PyObject *start(PyObject *self, PyObject *args) {
    const char *library;
    long wait_ms;
    if (!PyArg_ParseTuple(args, "sl", &library, &wait_ms)) {
        return NULL;
    }
    if (running) {
        PyErr_SetString(PyExc_RuntimeError, "the media poller is already running");
        return NULL;
    }
    if (wait_ms < 1 || wait_ms > 10000) {
        PyErr_SetString(PyExc_ValueError, "the poll timeout must be 1-10000 ms");
        return NULL;
    }
    void *handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) {
        PyErr_Format(PyExc_RuntimeError, "pjsua2 is not loaded: %s", dlerror());
        return NULL;
    }
    pj_poll = (poll_fn)dlsym(handle, "pj_ioqueue_poll");
    pj_register = (register_fn)dlsym(handle, "pj_thread_register");
    endpt_fn get_endpt = (endpt_fn)dlsym(handle, "pjsua_get_pjmedia_endpt");
    ioqueue_fn get_ioqueue = (ioqueue_fn)dlsym(handle, "pjmedia_endpt_get_ioqueue");
    stop_threads_fn stop_threads = (stop_threads_fn)dlsym(handle, "pjmedia_endpt_stop_threads");
    dlclose(handle); /* pjsua2's module stays loaded: the worker imported it */
    if (!pj_poll || !pj_register || !get_endpt || !get_ioqueue || !stop_threads) {
        PyErr_SetString(PyExc_RuntimeError, "pjsua2's module lacks a pjlib symbol");
        return NULL;
    }
    void *endpt = get_endpt();
    ioqueue = endpt ? get_ioqueue(endpt) : NULL;
    if (ioqueue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pjsua has no media endpoint yet (before libStart?)");
        return NULL;
    }
    /* pjmedia's thread ends at its next 10 ms turn; joined here (the GIL
     * released: nothing of Python's is touched meanwhile). */
    int stopped;
    Py_BEGIN_ALLOW_THREADS
    stopped = stop_threads(endpt);
    Py_END_ALLOW_THREADS
    if (stopped != 0) {
        PyErr_Format(PyExc_RuntimeError, "pjmedia's media thread did not stop (status %d)", stopped);
        return NULL;
    }
    timeout_ms = wait_ms;
    atomic_store(&stopping, 0);
    atomic_store(&started, 0);
    int error = pthread_create(&thread, NULL, poll_loop, NULL);
    if (error != 0) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* Nobody polls RTP until the thread is registered with pjlib: wait. */
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&started) == 0) {
        sched_yield();
    }
    Py_END_ALLOW_THREADS
    if (atomic_load(&started) < 0) {
        pthread_join(thread, NULL);
        PyErr_SetString(PyExc_RuntimeError, "pjlib refused to register the media poller's thread");
        return NULL;
    }
    running = 1;
    Py_RETURN_NONE;
}

static PyObject *stop(PyObject *self, PyObject *unused) {
    if (running) {
        atomic_store(&stopping, 1);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(thread, NULL);
        Py_END_ALLOW_THREADS
        running = 0;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS,
     "start(library, timeout_ms): poll pjmedia's I/O queue on a C thread (after libStart)."},
    {"stop", stop, METH_NOARGS, "stop(): end the thread and wait for it (before libDestroy)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_media_poll", "pjmedia's RTP I/O queue, polled from C.", -1, methods,
};

PyMODINIT_FUNC PyInit__media_poll(void) { return PyModule_Create(&module); }
