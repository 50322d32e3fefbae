/* G.711 table look-ups in C: the optional accelerator of assistline/media/g711.py.
 *
 * numpy spends about 0.3 us of call overhead per operation, several times
 * what a 160-sample look-up costs, so a frame-sized G.711 conversion through
 * numpy is 2-6 times slower than a C loop. This module is only the loop: the
 * tables are computed in Python (g711.py, from the formulas of G.711) and
 * handed over once with set_tables(), so there is one definition of the codec.
 * Inputs are any contiguous buffer (bytes, numpy arrays); outputs are new numpy
 * arrays made with numpy's C API, which costs a third of numpy.empty() called
 * from Python.
 */
#define PY_SSIZE_T_CLEAN
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <Python.h>
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>

static uint8_t ulaw_encode_table[65536];
static uint8_t alaw_encode_table[65536];
static int16_t ulaw_decode_table[256];
static int16_t alaw_decode_table[256];
static int tables_set = 0;

static int
copy_table(PyObject *source, void *target, Py_ssize_t size, const char *name)
{
    Py_buffer view;
    if (PyObject_GetBuffer(source, &view, PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (view.len != size) {
        PyErr_Format(PyExc_ValueError, "%s must be %zd bytes, not %zd", name, size, view.len);
        PyBuffer_Release(&view);
        return -1;
    }
    memcpy(target, view.buf, (size_t)size);
    PyBuffer_Release(&view);
    return 0;
}

static PyObject *
set_tables(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "set_tables takes four tables");
        return NULL;
    }
    if (copy_table(args[0], ulaw_encode_table, 65536, "the u-law encode table") < 0
        || copy_table(args[1], ulaw_decode_table, 512, "the u-law decode table") < 0
        || copy_table(args[2], alaw_encode_table, 65536, "the A-law encode table") < 0
        || copy_table(args[3], alaw_decode_table, 512, "the A-law decode table") < 0) {
        return NULL;
    }
    tables_set = 1;
    Py_RETURN_NONE;
}

static PyObject *
decode(const int16_t *table, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer in;
    if (nargs != 1 || !tables_set) {
        PyErr_SetString(PyExc_TypeError, "takes one buffer of codes, after set_tables()");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    npy_intp length = (npy_intp)in.len;
    PyObject *out = PyArray_SimpleNew(1, &length, NPY_INT16);
    if (out != NULL) {
        const uint8_t *codes = (const uint8_t *)in.buf;
        int16_t *samples = (int16_t *)PyArray_DATA((PyArrayObject *)out);
        for (npy_intp i = 0; i < length; i++) {
            samples[i] = table[codes[i]];
        }
    }
    PyBuffer_Release(&in);
    return out;
}

static PyObject *
encode(const uint8_t *table, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer in;
    if (nargs != 1 || !tables_set) {
        PyErr_SetString(PyExc_TypeError, "takes one buffer of int16 samples, after set_tables()");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    npy_intp length = (npy_intp)(in.len / 2);
    PyObject *out = PyArray_SimpleNew(1, &length, NPY_UINT8);
    if (out != NULL) {
        /* The sample's 16-bit pattern indexes the table: -1 is entry 65535. */
        const uint16_t *samples = (const uint16_t *)in.buf;
        uint8_t *codes = (uint8_t *)PyArray_DATA((PyArrayObject *)out);
        for (npy_intp i = 0; i < length; i++) {
            codes[i] = table[samples[i]];
        }
    }
    PyBuffer_Release(&in);
    return out;
}

static PyObject *
ulaw_decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return decode(ulaw_decode_table, args, nargs);
}

static PyObject *
alaw_decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return decode(alaw_decode_table, args, nargs);
}

static PyObject *
ulaw_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return encode(ulaw_encode_table, args, nargs);
}

static PyObject *
alaw_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return encode(alaw_encode_table, args, nargs);
}

static PyMethodDef methods[] = {
    {"set_tables", (PyCFunction)(void (*)(void))set_tables, METH_FASTCALL,
     "set_tables(ulaw_encode, ulaw_decode, alaw_encode, alaw_decode)"},
    {"ulaw_decode", (PyCFunction)(void (*)(void))ulaw_decode, METH_FASTCALL,
     "ulaw_decode(codes) -> int16 array"},
    {"alaw_decode", (PyCFunction)(void (*)(void))alaw_decode, METH_FASTCALL,
     "alaw_decode(codes) -> int16 array"},
    {"ulaw_encode", (PyCFunction)(void (*)(void))ulaw_encode, METH_FASTCALL,
     "ulaw_encode(samples) -> uint8 array"},
    {"alaw_encode", (PyCFunction)(void (*)(void))alaw_encode, METH_FASTCALL,
     "alaw_encode(samples) -> uint8 array"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_g711", "G.711 table look-ups (see g711.py)", -1, methods,
};

PyMODINIT_FUNC
PyInit__g711(void)
{
    import_array();
    return PyModule_Create(&module_def);
}
