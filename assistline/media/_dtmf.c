/* The DTMF detector's per-block projections in C: the optional accelerator of dtmf.py.
 *
 * dtmf.py projects each 10 ms block onto the eight DTMF frequencies (over the
 * whole block and its first half) and sums squares into one row per block:
 * [screen, tones, p0..p7, energy]. Through numpy that is five calls per frame
 * whose fixed cost exceeds their arithmetic; here it is one loop. The basis is
 * computed in Python and passed in, so the mathematics is defined once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define PROJECTIONS 32
#define ROW_VALUES 11

/* project(samples, basis, projections, purity) -> list of rows
 *   samples:     int16 buffer, a whole number of blocks of n samples
 *   basis:       float32 buffer, n x 32 (column j of the block projection)
 *   projections: writable float32 buffer, blocks x stride; the first 32 values
 *                of each row receive the block's projections
 *   purity:      the screen's weight on the block energy
 */
static PyObject *
project(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer samples, basis, projections;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "project(samples, basis, projections, purity)");
        return NULL;
    }
    double purity = PyFloat_AsDouble(args[3]);
    if (purity == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &samples, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &basis, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&samples);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &projections, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&samples);
        PyBuffer_Release(&basis);
        return NULL;
    }
    PyObject *rows = NULL;
    Py_ssize_t n = basis.len / (Py_ssize_t)(PROJECTIONS * sizeof(float));
    Py_ssize_t total = samples.len / (Py_ssize_t)sizeof(int16_t);
    if (n <= 0 || total % n != 0) {
        PyErr_SetString(PyExc_ValueError, "samples are not whole blocks of the basis");
        goto done;
    }
    Py_ssize_t count = total / n;
    if (projections.len % (count * (Py_ssize_t)sizeof(float)) != 0) {
        PyErr_SetString(PyExc_ValueError, "projections do not hold one row per block");
        goto done;
    }
    Py_ssize_t stride = projections.len / (count * (Py_ssize_t)sizeof(float));
    if (stride < PROJECTIONS) {
        PyErr_SetString(PyExc_ValueError, "projection rows are shorter than 32 values");
        goto done;
    }
    rows = PyList_New(count);
    if (rows == NULL) {
        goto done;
    }
    const int16_t *x = (const int16_t *)samples.buf;
    const float *b = (const float *)basis.buf;
    float *out = (float *)projections.buf;
    for (Py_ssize_t block = 0; block < count; block++) {
        const int16_t *xs = x + block * n;
        float z[PROJECTIONS] = {0};
        double energy = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            float v = (float)xs[i];
            const float *bi = b + i * PROJECTIONS;
            energy += (double)v * v;
            for (int j = 0; j < PROJECTIONS; j++) {
                z[j] += v * bi[j];
            }
        }
        float *target = out + block * stride;
        double values[ROW_VALUES];
        double tones = 0.0;
        for (int j = 0; j < PROJECTIONS; j++) {
            target[j] = z[j];
        }
        for (int k = 0; k < 8; k++) {
            double power = (double)z[2 * k] * z[2 * k] + (double)z[2 * k + 1] * z[2 * k + 1];
            values[2 + k] = power;
            tones += power;
        }
        values[0] = tones - purity * energy;
        values[1] = tones;
        values[10] = energy;
        PyObject *row = PyList_New(ROW_VALUES);
        if (row == NULL) {
            Py_CLEAR(rows);
            goto done;
        }
        for (int k = 0; k < ROW_VALUES; k++) {
            PyObject *value = PyFloat_FromDouble(values[k]);
            if (value == NULL) {
                Py_DECREF(row);
                Py_CLEAR(rows);
                goto done;
            }
            PyList_SET_ITEM(row, k, value);
        }
        PyList_SET_ITEM(rows, block, row);
    }
done:
    PyBuffer_Release(&samples);
    PyBuffer_Release(&basis);
    PyBuffer_Release(&projections);
    return rows;
}

static PyMethodDef methods[] = {
    {"project", (PyCFunction)(void (*)(void))project, METH_FASTCALL,
     "project(samples, basis, projections, purity) -> rows"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_dtmf", "DTMF block projections (see dtmf.py)", -1, methods,
};

PyMODINIT_FUNC
PyInit__dtmf(void)
{
    return PyModule_Create(&module_def);
}
