/* ``Bypass``: what a module class holds as its ``__call__`` once the zero-code hooks have learnt that its
 * instances are only ever called nested inside another module (``forward.ModuleCalls``).
 *
 * Why: the hooks wrap ``nn.Module.__call__``; a nested call would pay the wrapper's Python frame (about
 * 0.4-0.6 us), +3% on a model of 900 small module calls a step. Putting nn.Module's own ``__call__`` in
 * the class's dict removed that cost but was visible: ``torch.fx`` and ``torch.export`` trace modules by
 * patching ``nn.Module.__call__``, which such a class then no longer reached (leaf modules were traced
 * through, ``nn_module_stack`` lost its entries), and ``nn.Linear.__call__ is nn.Module.__call__`` became
 * False.
 *
 * A Bypass asks, at every call, what ``nn.Module.__call__`` is now (one dictionary lookup): while it is
 * still our wrapper, the call goes straight to the original (no Python frame, nothing allocated); when
 * anybody else has replaced it (fx's tracer, export), the call goes to whatever is there now, as it would
 * in a plain run. Read from the class (``nn.Linear.__call__``) or an instance (``linear.__call__``) it
 * gives what ``nn.Module.__call__`` gives, bound to the instance in the second case, so identity checks,
 * ``linear.__call__.__func__ is nn.Module.__call__`` and pickling by name read as in a plain run. A call
 * ``linear(x)`` never reads it that way: with Py_TPFLAGS_METHOD_DESCRIPTOR, CPython's slot for a type's
 * ``__call__`` calls the Bypass itself with the instance first (the fast path above).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

typedef struct {
    PyObject_HEAD
    PyObject *original;   /* nn.Module's own __call__ (a function) */
    PyObject *owner;      /* torch.nn.Module, the class whose __call__ is wrapped */
    PyObject *wrapper;    /* our wrapper, installed as owner.__call__ */
    vectorcallfunc vectorcall;
} Bypass;

static PyObject *str_call;

/* ``owner.__call__`` now, from the owner's own dict (borrowed; the original when it has none). NULL with
 * an error set if the lookup fails. */
static PyObject *
current(Bypass *self)
{
    PyObject *fn = PyDict_GetItemWithError(((PyTypeObject *)self->owner)->tp_dict, str_call);
    return fn == NULL && !PyErr_Occurred() ? self->original : fn;
}

/* What a call of a bypassing class runs now (borrowed): the original while ``owner.__call__`` is our
 * wrapper, else whatever ``owner.__call__`` is. NULL with an error set if the lookup fails. */
static PyObject *
target(Bypass *self)
{
    PyObject *fn = current(self);
    return fn == self->wrapper ? self->original : fn;
}

static PyObject *
Bypass_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *fn = target((Bypass *)callable);
    return fn == NULL ? NULL : PyObject_Vectorcall(fn, args, nargsf, kwnames);
}

/* What ``owner.__call__`` is (our wrapper, while installed), bound to the instance when read from one, so
 * that ``nn.Linear.__call__ is nn.Module.__call__`` and ``linear.__call__.__func__ is nn.Module.__call__``
 * hold as in a plain run (an explicit ``linear.__call__(x)`` then runs the wrapper, as it would without us). */
static PyObject *
Bypass_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == Py_None)
        obj = NULL;
    PyObject *fn = current((Bypass *)self);
    if (fn == NULL)
        return NULL;
    descrgetfunc get = Py_TYPE(fn)->tp_descr_get;
    if (get == NULL)
        return Py_NewRef(fn);
    return get(fn, obj, type);
}

static PyObject *
Bypass_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *original, *owner, *wrapper;
    static char *kwlist[] = {"original", "owner", "wrapper", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O:Bypass", kwlist, &original, &PyType_Type, &owner, &wrapper))
        return NULL;
    if (!PyCallable_Check(original)) {
        PyErr_SetString(PyExc_TypeError, "Bypass: original must be callable");
        return NULL;
    }
    Bypass *self = (Bypass *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->original = Py_NewRef(original);
    self->owner = Py_NewRef(owner);
    self->wrapper = Py_NewRef(wrapper);
    self->vectorcall = Bypass_vectorcall;
    return (PyObject *)self;
}

static int
Bypass_traverse(Bypass *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->owner);
    Py_VISIT(self->wrapper);
    return 0;
}

static int
Bypass_clear(Bypass *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->wrapper);
    return 0;
}

static void
Bypass_dealloc(Bypass *self)
{
    PyObject_GC_UnTrack(self);
    Bypass_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Bypass_repr(Bypass *self)
{
    return PyUnicode_FromFormat("<throughput module-call bypass of %R>", self->original);
}

static PyTypeObject BypassType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "throughput.capture._bypass.Bypass",
    .tp_basicsize = sizeof(Bypass),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "Bypass(original, owner, wrapper): a module class's __call__ that skips owner's wrapper.",
    .tp_new = Bypass_new,
    .tp_traverse = (traverseproc)Bypass_traverse,
    .tp_clear = (inquiry)Bypass_clear,
    .tp_dealloc = (destructor)Bypass_dealloc,
    .tp_repr = (reprfunc)Bypass_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Bypass, vectorcall),
    .tp_descr_get = Bypass_get,
};

/* ``Around(original, enter, leave, fail=None)``: a patched function that adds no Python frame around the
 * original.
 *
 * Why: a wrapper written in Python is a frame between the caller and the original, and Python reports a
 * warning at the innermost Python frame (a C++ TORCH_WARN, stacklevel 1) or counts frames from it
 * (``stacklevel=N``): ``x.to(torch.float32)`` on a complex tensor warned from our wrapper's line instead
 * of the script's, so ``-W error::UserWarning:__main__`` no longer raised (exit 0 instead of 1) and
 * ``filterwarnings(module=...)`` filters missed; a caught traceback printed by the script showed our
 * frame. Here the original runs with the caller's frame innermost.
 *
 * A call runs ``token = enter(*args, **kwargs)`` (Python, before the original; None: just call the
 * original), then the original, then ``leave(token)`` when it returned, ``fail(token)`` when it raised
 * (``leave`` too when there is no ``fail``), with no exception set; the original's result or exception is
 * the call's. Read from a class it is itself, from an instance a method bound to it (as
 * a function is), and a method call ``x.f(...)`` calls it with ``x`` first without binding
 * (Py_TPFLAGS_METHOD_DESCRIPTOR). Its instance dictionary holds the original's identity (``__name__``,
 * ``__qualname__``, ``__module__``, ``__doc__``, ``__wrapped__``) but shows no ``__dict__`` attribute, as a
 * C method has none; it pickles by that name, as the original does: ``__reduce__`` gives ``__qualname__``,
 * which pickle looks up in ``__module__``.
 */
typedef struct {
    PyObject_HEAD
    PyObject *original;
    PyObject *enter;
    PyObject *leave;
    PyObject *fail;       /* NULL: leave is called whether the original returned or raised */
    PyObject *dict;
    PyObject *weakrefs;   /* the leftover checks keep weak references to our wrappers */
    vectorcallfunc vectorcall;
} Around;

static PyObject *
Around_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Around *self = (Around *)callable;
    PyObject *token = PyObject_Vectorcall(self->enter, args, nargsf, kwnames);
    if (token == NULL)
        return NULL;
    if (token == Py_None) {
        Py_DECREF(token);
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *after = result == NULL && self->fail != NULL ? self->fail : self->leave;
    PyObject *left = PyObject_CallOneArg(after, token);
    Py_DECREF(token);
    if (left == NULL) {   /* leave failed: its error wins, as in a Python ``finally`` */
        Py_XDECREF(result);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return NULL;
    }
    Py_DECREF(left);
    PyErr_Restore(type, value, traceback);
    return result;
}

static PyObject *
Around_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *
Around_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *original, *enter, *leave, *fail = Py_None;
    static char *kwlist[] = {"original", "enter", "leave", "fail", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:Around", kwlist, &original, &enter, &leave, &fail))
        return NULL;
    if (!PyCallable_Check(original) || !PyCallable_Check(enter) || !PyCallable_Check(leave)
            || (fail != Py_None && !PyCallable_Check(fail))) {
        PyErr_SetString(PyExc_TypeError, "Around: original, enter, leave and fail (unless None) must be callable");
        return NULL;
    }
    Around *self = (Around *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->original = Py_NewRef(original);
    self->enter = Py_NewRef(enter);
    self->leave = Py_NewRef(leave);
    self->fail = fail == Py_None ? NULL : Py_NewRef(fail);
    self->vectorcall = Around_vectorcall;
    return (PyObject *)self;
}

static int
Around_traverse(Around *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->enter);
    Py_VISIT(self->leave);
    Py_VISIT(self->fail);
    Py_VISIT(self->dict);
    return 0;
}

static int
Around_clear(Around *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->enter);
    Py_CLEAR(self->leave);
    Py_CLEAR(self->fail);
    Py_CLEAR(self->dict);
    return 0;
}

static void
Around_dealloc(Around *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Around_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Around_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttrString(self, "__qualname__");
}

static PyObject *
Around_repr(Around *self)
{
    return PyObject_Repr(self->original);
}

static PyMethodDef Around_methods[] = {
    {"__reduce__", Around_reduce, METH_NOARGS, "Pickled by name, as the original is."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AroundType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "throughput.capture._bypass.Around",
    .tp_basicsize = sizeof(Around),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "Around(original, enter, leave, fail=None): the original called with no Python frame of ours around it.",
    .tp_new = Around_new,
    .tp_traverse = (traverseproc)Around_traverse,
    .tp_clear = (inquiry)Around_clear,
    .tp_dealloc = (destructor)Around_dealloc,
    .tp_repr = (reprfunc)Around_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Around, vectorcall),
    .tp_descr_get = Around_get,
    .tp_dictoffset = offsetof(Around, dict),
    .tp_weaklistoffset = offsetof(Around, weakrefs),
    .tp_methods = Around_methods,
};

/* ``detached(fn, *args, **kwargs)``: ``fn(*args, **kwargs)`` as the bottom of the Python stack.
 *
 * Why: ``throughput profile`` runs the script from its own frames (the CLI, the runner, ``exec``); a
 * plain ``python script.py`` has the script's module frame at the bottom. Code that walks the stack saw
 * ours: ``inspect.stack()`` at module level listed 11 frames instead of 1, Dynamo's graph-break "user
 * code traceback", ``logging``'s ``stack_info`` and ``traceback.print_stack`` printed them, and a
 * module-level ``warnings.warn(..., stacklevel=2)`` named our runner instead of ``sys:1``. The frame the
 * call starts gets no previous frame (CPython 3.11: the thread's current ``_PyCFrame`` has its
 * ``current_frame`` cleared for the call and put back after it, returned or raised), so ``f_back``,
 * ``sys._getframe(n)`` and every stack walk end at the script, as in a plain run. Our frames still hold
 * their place on the C stack and get control back as usual. Other Python versions: a plain call (the
 * frames stay visible). */
static PyObject *
detached(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "detached() needs the callable to call");
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    _PyCFrame *cframe = PyThreadState_Get()->cframe;
    struct _PyInterpreterFrame *below = cframe->current_frame;
    cframe->current_frame = NULL;
    PyObject *result = PyObject_Vectorcall(args[0], args + 1, (size_t)(nargs - 1), kwnames);
    cframe->current_frame = below;
    return result;
#else
    return PyObject_Vectorcall(args[0], args + 1, (size_t)(nargs - 1), kwnames);
#endif
}

static PyMethodDef bypass_functions[] = {
    {"detached", (PyCFunction)(void (*)(void))detached, METH_FASTCALL | METH_KEYWORDS,
     "detached(fn, *args, **kwargs): fn called as the bottom of the Python stack (no frame below it)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bypass_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "throughput.capture._bypass",
    .m_doc = "Calls that add no Python frame: module classes called only nested skip the zero-code wrapper "
             "(Bypass, forward.py), and patched functions run their original with no frame around it (Around, "
             "wrappers.py). Optional: the hooks fall back to Python wrappers.",
    .m_size = -1,
    .m_methods = bypass_functions,
};

PyMODINIT_FUNC
PyInit__bypass(void)
{
    if ((str_call = PyUnicode_InternFromString("__call__")) == NULL || PyType_Ready(&BypassType) < 0
            || PyType_Ready(&AroundType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&bypass_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Bypass", (PyObject *)&BypassType) < 0
            || PyModule_AddObjectRef(m, "Around", (PyObject *)&AroundType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
