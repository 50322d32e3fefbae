/* libopus for a WebRTC leg's audio (see audio.py), without PyAV in between.
 *
 * PyAV's libopus decoder gives 48 kHz whatever it is asked, so every packet
 * the customer sends was decoded at 48 kHz and resampled to 16 kHz in numpy;
 * its encoder wants each 20 ms wrapped in an av.AudioFrame with fractional
 * time bases. Here libopus encodes from and decodes to the internal rate
 * directly, one C call a packet.
 *
 * libopus itself is the one PyAV's libavcodec already loaded: load() takes
 * its path (audio.py finds it in /proc/self/maps) and opens it with
 * RTLD_NOLOAD, so nothing is loaded twice and no other copy is used. Its
 * API is stable since 1.0; the few prototypes and constants needed are
 * declared here, as opus.h and opus_defines.h have them, so no headers are
 * needed at build time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#define OPUS_OK 0
#define OPUS_APPLICATION_VOIP 2048
#define OPUS_SET_BITRATE_REQUEST 4002
#define OPUS_SET_COMPLEXITY_REQUEST 4010
/* A 20 ms packet of one frame is at most 1275 bytes (RFC 6716, 3.2.1). */
#define MAX_PACKET 1500
/* The longest packet is 120 ms. */
#define MAX_PACKET_MS 120

typedef struct OpusEncoder OpusEncoder;
typedef struct OpusDecoder OpusDecoder;

static OpusEncoder *(*encoder_create)(int32_t rate, int channels, int application, int *error);
static int32_t (*encode_fn)(OpusEncoder *st, const int16_t *pcm, int frame_size,
                            unsigned char *data, int32_t max_data_bytes);
static int (*encoder_ctl)(OpusEncoder *st, int request, ...);
static void (*encoder_destroy)(OpusEncoder *st);
static OpusDecoder *(*decoder_create)(int32_t rate, int channels, int *error);
static int (*decode_fn)(OpusDecoder *st, const unsigned char *data, int32_t len, int16_t *pcm,
                        int frame_size, int decode_fec);
static void (*decoder_destroy)(OpusDecoder *st);
static const char *(*opus_strerror_fn)(int error);
static const char *(*version_fn)(void);

static int
check_rate(long rate)
{
    if (rate != 8000 && rate != 12000 && rate != 16000 && rate != 24000 && rate != 48000) {
        PyErr_Format(PyExc_ValueError, "libopus takes 8, 12, 16, 24 or 48 kHz, not %ld Hz", rate);
        return -1;
    }
    if (version_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "libopus is not loaded (call load() first)");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ Encoder */

typedef struct {
    PyObject_HEAD
    OpusEncoder *state;
    int frame; /* samples in 20 ms */
} Encoder;

static int
Encoder_init(Encoder *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"rate", "bitrate", "complexity", NULL};
    long rate, bitrate, complexity;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "lll", keywords, &rate, &bitrate, &complexity)) {
        return -1;
    }
    if (check_rate(rate) < 0) {
        return -1;
    }
    if (bitrate < 6000 || bitrate > 510000 || complexity < 0 || complexity > 10) {
        PyErr_SetString(PyExc_ValueError, "bitrate is 6000-510000 bit/s, complexity 0-10");
        return -1;
    }
    if (self->state != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this encoder is made already");
        return -1;
    }
    int error = OPUS_OK;
    self->state = encoder_create((int32_t)rate, 1, OPUS_APPLICATION_VOIP, &error);
    if (self->state == NULL || error != OPUS_OK) {
        PyErr_Format(PyExc_RuntimeError, "libopus made no encoder: %s", opus_strerror_fn(error));
        return -1;
    }
    if (encoder_ctl(self->state, OPUS_SET_BITRATE_REQUEST, (int32_t)bitrate) != OPUS_OK ||
        encoder_ctl(self->state, OPUS_SET_COMPLEXITY_REQUEST, (int32_t)complexity) != OPUS_OK) {
        PyErr_SetString(PyExc_RuntimeError, "libopus refused the bit rate or complexity");
        return -1;
    }
    self->frame = (int)(rate / 50);
    return 0;
}

static void
Encoder_dealloc(Encoder *self)
{
    if (self->state != NULL) {
        encoder_destroy(self->state);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Encoder_encode(Encoder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "encode() takes one buffer of int16 samples");
        return NULL;
    }
    if (self->state == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this encoder was never made");
        return NULL;
    }
    Py_buffer in;
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if (in.len != (Py_ssize_t)self->frame * 2) {
        PyErr_Format(PyExc_ValueError, "a 20 ms frame is %d int16 samples (%d bytes), not %zd bytes",
                     self->frame, self->frame * 2, in.len);
        PyBuffer_Release(&in);
        return NULL;
    }
    unsigned char packet[MAX_PACKET];
    int32_t size = encode_fn(self->state, (const int16_t *)in.buf, self->frame, packet, MAX_PACKET);
    PyBuffer_Release(&in);
    if (size < 0) {
        PyErr_Format(PyExc_RuntimeError, "libopus could not encode: %s", opus_strerror_fn(size));
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)packet, size);
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Encoder_encode, METH_FASTCALL,
     "encode(samples) -> bytes: one Opus packet of one 20 ms frame"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "assistline.webrtc._opus.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(rate, bitrate, complexity): mono libopus for voice, 20 ms packets",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

/* ------------------------------------------------------------------ Decoder */

typedef struct {
    PyObject_HEAD
    OpusDecoder *state;
    int most; /* samples in the longest packet */
} Decoder;

static int
Decoder_init(Decoder *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"rate", NULL};
    long rate;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "l", keywords, &rate)) {
        return -1;
    }
    if (check_rate(rate) < 0) {
        return -1;
    }
    if (self->state != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this decoder is made already");
        return -1;
    }
    int error = OPUS_OK;
    self->state = decoder_create((int32_t)rate, 1, &error);
    if (self->state == NULL || error != OPUS_OK) {
        PyErr_Format(PyExc_RuntimeError, "libopus made no decoder: %s", opus_strerror_fn(error));
        return -1;
    }
    self->most = (int)(rate * MAX_PACKET_MS / 1000);
    return 0;
}

static void
Decoder_dealloc(Decoder *self)
{
    if (self->state != NULL) {
        decoder_destroy(self->state);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Decoder_decode(Decoder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "decode() takes one Opus packet");
        return NULL;
    }
    if (self->state == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this decoder was never made");
        return NULL;
    }
    Py_buffer in;
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if (in.len == 0 || in.len > INT32_MAX) {
        /* An empty packet would ask libopus to conceal a loss: not what was sent. */
        PyErr_Format(PyExc_ValueError, "an Opus packet is at least 1 byte, not %zd", in.len);
        PyBuffer_Release(&in);
        return NULL;
    }
    int16_t pcm[48000 * MAX_PACKET_MS / 1000];
    int samples = decode_fn(self->state, (const unsigned char *)in.buf, (int32_t)in.len, pcm,
                            self->most, 0);
    PyBuffer_Release(&in);
    if (samples < 0) {
        PyErr_Format(PyExc_ValueError, "libopus refused the packet: %s", opus_strerror_fn(samples));
        return NULL;
    }
    npy_intp length = samples;
    PyObject *out = PyArray_SimpleNew(1, &length, NPY_INT16);
    if (out != NULL) {
        memcpy(PyArray_DATA((PyArrayObject *)out), pcm, (size_t)samples * sizeof(int16_t));
    }
    return out;
}

static PyMethodDef Decoder_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))Decoder_decode, METH_FASTCALL,
     "decode(packet) -> int16 array: the packet's samples, mono, at the decoder's rate"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "assistline.webrtc._opus.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decoder(rate): mono libopus decoding to rate",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

/* ------------------------------------------------------------------ module */

static PyObject *
load(PyObject *module, PyObject *args)
{
    const char *library;
    if (!PyArg_ParseTuple(args, "s", &library)) {
        return NULL;
    }
    void *handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) {
        PyErr_Format(PyExc_RuntimeError, "libopus is not loaded: %s", dlerror());
        return NULL;
    }
    void *symbols[] = {
        dlsym(handle, "opus_encoder_create"), dlsym(handle, "opus_encode"),
        dlsym(handle, "opus_encoder_ctl"),    dlsym(handle, "opus_encoder_destroy"),
        dlsym(handle, "opus_decoder_create"), dlsym(handle, "opus_decode"),
        dlsym(handle, "opus_decoder_destroy"), dlsym(handle, "opus_strerror"),
        dlsym(handle, "opus_get_version_string"),
    };
    dlclose(handle); /* still loaded: libavcodec holds it */
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        if (symbols[i] == NULL) {
            PyErr_Format(PyExc_RuntimeError, "%s lacks a libopus symbol", library);
            return NULL;
        }
    }
    encoder_create = symbols[0];
    encode_fn = symbols[1];
    encoder_ctl = symbols[2];
    encoder_destroy = symbols[3];
    decoder_create = symbols[4];
    decode_fn = symbols[5];
    decoder_destroy = symbols[6];
    opus_strerror_fn = symbols[7];
    version_fn = symbols[8];
    return PyUnicode_FromString(version_fn());
}

static PyMethodDef methods[] = {
    {"load", load, METH_VARARGS, "load(path) -> version: use the libopus already loaded at path"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_opus", "libopus for WebRTC legs (see audio.py)", -1, methods,
};

PyMODINIT_FUNC
PyInit__opus(void)
{
    import_array();
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&DecoderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&EncoderType);
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(module, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObject(module, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
