/* Node: one graph task, a lightweight task that the engine steps itself.
 *
 * A node calls its task function and then drives the coroutine it returned
 * with send/throw, in its own copy of the caller's context and with itself
 * swapped in as asyncio's current task.  What the coroutine yields decides
 * how the node waits:
 *
 *   - a Sibling of its own (`await self.user` on a running sibling): the node
 *     is parked on that sibling and resumed from the graph's ready queue when
 *     the sibling finishes; the event loop is not involved;
 *   - an asyncio future (anything with `_asyncio_future_blocking` set):
 *     `add_done_callback(node._wakeup)`, as asyncio.Task does;
 *   - None (a bare yield, `asyncio.sleep(0)`): `loop.call_soon(node._wakeup)`.
 *
 * While it runs, asyncio code sees the node as the current task, so it has
 * the Task interface (cancel, uncancel, cancelling, done, ...).  Cancellation
 * follows Task's rules: cancel the future it waits on, else throw
 * CancelledError in at its next step.
 *
 * A node is never stepped re-entrantly: every resume goes through the ready
 * queue, which only graph_drain() empties, one node at a time.
 */
#ifndef BETTERALL_NODE_H
#define BETTERALL_NODE_H

#include "state.h"

/* -- objects the collector skips while the graph runs -------------------- */

/* A node's coroutine and its `self` are left untracked by the collector
 * while their graph runs without the caller having suspended, as the nodes
 * themselves are (see graph_add_node): the graph keeps them alive through
 * the nodes, and a graph of a thousand suspended tasks would otherwise have
 * every young collection walk a thousand coroutines, their frames and
 * their contexts.  They are tracked again with the nodes (node_track), and
 * a coroutine before the node lets it go: CPython's own dealloc of a
 * coroutine expects a tracked object. */
static inline void
untrack_while_running(GraphObject *g, PyObject *op)
{
    if (!g->nodes_tracked && PyObject_GC_IsTracked(op)) {
        PyObject_GC_UnTrack(op);
    }
}

/* Only for what the engine untracked: its own objects and coroutines. */
static inline void
track_again(PyObject *op)
{
    if (op != NULL && !PyObject_GC_IsTracked(op)) {
        PyObject_GC_Track(op);
    }
}

static inline void
track_coro_again(PyObject *coro)
{
    if (coro != NULL && PyCoro_CheckExact(coro)) {
        track_again(coro);
    }
}

/* Let the collector see a node again, and what it skipped with it (see
 * untrack_while_running). */
static void
node_track(NodeObject *node)
{
    track_again((PyObject *)node);
    track_coro_again(node->coro);
    track_again(node->proxy);
}

/* -- finishing ---------------------------------------------------------- */

/* loop.call_soon(fn, arg[, context=context]); with loop NULL, the running
 * loop's (for objects that outlived their call). */
static int
call_soon_in(PyObject *loop, mod_state *st, PyObject *fn, PyObject *arg, PyObject *context)
{
    PyObject *owned = NULL;
    if (loop == NULL) {
        loop = owned = PyObject_CallNoArgs(st->get_running_loop);
        if (loop == NULL) {
            return -1;
        }
    }
    PyObject *args[4] = {loop, fn, arg, context};
    PyObject *r = PyObject_VectorcallMethod(st->s_call_soon, args, 3,
                                            context ? st->kw_context : NULL);
    Py_XDECREF(owned);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int
call_soon(GraphObject *g, PyObject *fn, PyObject *arg, PyObject *context)
{
    mod_state *st = g->mst;
    PyObject *args[4] = {g->loop, fn, arg, context};
    PyObject *r = PyObject_VectorcallMethod(st->s_call_soon, args, 3,
                                            context ? st->kw_context : NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}


/* Mark a node done and wake everything that waits on it.  Steals nothing. */
static int
node_finish(NodeObject *node, int status, PyObject *value, PyObject *error)
{
    GraphObject *g = node->graph;
    int rc = 0;
    if (node->state == NODE_DONE) {
        return 0;
    }
    BA_ASSERT(g != NULL && g->remaining > 0);
    BA_ASSERT(node->parked == NULL && !node->queued);
    if (g->report != NULL) {
        node->t_end = ba_now(g->mst);
        if (node->state == NODE_PENDING) {
            node->t_start = node->t_end;
        }
        g->t_mark = node->t_end;
        g->has_mark = 1;
    }
    node->state = NODE_DONE;
    node->status = status;
    Py_XSETREF(node->result, Py_XNewRef(value));
    Py_XSETREF(node->error, Py_XNewRef(error));
    /* The coroutine has finished: drop it (and its frame) now. */
    track_coro_again(node->coro);
    Py_CLEAR(node->coro);
    Py_CLEAR(node->fut_waiter);
    Py_CLEAR(node->resume_exc);
    Py_CLEAR(node->wakeup); /* it refers back to the node */
    g->remaining--;

    if (sibling_complete_all(node) < 0) {
        rc = -1;
    }
    BA_ASSERT(node->waiters == NULL);
    if (node->callbacks != NULL) {
        /* Foreign done callbacks (add_done_callback on current_task()). */
        PyObject *cbs = node->callbacks;
        node->callbacks = NULL;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
            PyObject *pair = PyList_GET_ITEM(cbs, i);
            if (call_soon(g, PyTuple_GET_ITEM(pair, 0), (PyObject *)node,
                          PyTuple_GET_ITEM(pair, 1)) < 0) {
                rc = -1;
            }
        }
        Py_DECREF(cbs);
    }
    return rc;
}

/* The node's code ended by raising `exc` (a new reference, stolen). */
static int
node_on_error(NodeObject *node, PyObject *exc)
{
    GraphObject *g = node->graph;
    mod_state *st = g->mst;
    int rc;
    if (g->mode == MODE_FLOW && PyObject_TypeCheck(exc, (PyTypeObject *)st->FlowEnd)) {
        if (!node->ended && !g->decided) {
            /* FlowEnd raised by hand: it ends the flow as _end() does. */
            PyObject *value = PyObject_GetAttr(exc, st->s_value);
            if (value == NULL) {
                Py_DECREF(exc);
                return -1;
            }
            rc = graph_end(g, node, value, exc);
            Py_DECREF(value);
            if (rc < 0) {
                Py_DECREF(exc);
                return -1;
            }
        }
        rc = node_finish(node, node->ended ? STATUS_ENDED : STATUS_CANCELLED, NULL, NULL);
        Py_DECREF(exc);
        return rc;
    }
    if (node->ended) {
        /* It called _end() (and then raised something else): it ended the
         * flow, and nothing it does afterwards changes that. */
        rc = node_finish(node, STATUS_ENDED, NULL, NULL);
        Py_DECREF(exc);
        return rc;
    }
    if (node->cancelled_by_graph) {
        /* Torn down by the graph: whatever it raised never replaces the
         * outcome already decided. */
        rc = node_finish(node, STATUS_CANCELLED, NULL, NULL);
        Py_DECREF(exc);
        return rc;
    }
    rc = node_finish(node, STATUS_REJECTED, NULL, exc);
    if (rc == 0) {
        rc = graph_fail(g, node, exc);
    }
    if (rc == 0 && (PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt) ||
                    PyErr_GivenExceptionMatches(exc, PyExc_SystemExit))) {
        /* As asyncio.Task does, let these stop the loop: raise it from the
         * engine's entry point (the caller's await, or the loop callback).
         * Every other task is cancelled first, in every mode, and whatever
         * is queued is resumed if the loop runs again (asyncio.run's
         * shutdown does), so their cleanup still runs. */
        if (!g->decided) {
            rc = graph_decide(g, exc, NULL);
        }
        if (rc == 0) {
            rc = graph_schedule_drain(g);
        }
        if (rc == 0) {
            ba_raise(exc);
            rc = -1;
        }
    }
    Py_DECREF(exc);
    return rc;
}

static int
node_on_return(NodeObject *node, PyObject *value)
{
    if (node->ended) {
        /* It called _end() and then swallowed the FlowEnd. */
        return node_finish(node, STATUS_ENDED, NULL, NULL);
    }
    if (node->cancelled_by_graph) {
        /* It swallowed the graph's cancellation: too late to count. */
        return node_finish(node, STATUS_CANCELLED, NULL, NULL);
    }
    if (Py_IS_TYPE(value, (PyTypeObject *)node->mst->FellBack)) {
        /* ba.fallback gave its value: unwrap it, and say so in the trace. */
        PyObject *inner = PyObject_GetAttr(value, node->mst->s_value);
        if (inner == NULL) {
            return node_on_error(node, ba_fetch_exc()); /* the task fails with it */
        }
        node->fell_back = 1;
        int rc = node_finish(node, STATUS_FULFILLED, inner, NULL);
        Py_DECREF(inner);
        return rc;
    }
    return node_finish(node, STATUS_FULFILLED, value, NULL);
}

/* -- stepping ---------------------------------------------------------------- */

/* throw() into an iterator; same contract as PyIter_Send.  An iterator
 * without throw() (what a plain __await__ may return) gets `exc` raised at
 * it, as a coroutine raises what is thrown in at an await whose iterator
 * has no throw(): asyncio's "Task got bad yield" then fails the task
 * instead of an AttributeError about throw. */
static PySendResult
iter_throw(mod_state *st, PyObject *it, PyObject *exc, PyObject **result)
{
    PyObject *meth = PyObject_GetAttr(it, st->s_throw);
    if (meth == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            ba_raise(exc);
        }
        *result = NULL;
        return PYGEN_ERROR;
    }
    PyObject *r = PyObject_CallOneArg(meth, exc);
    Py_DECREF(meth);
    if (r != NULL) {
        *result = r;
        return PYGEN_NEXT;
    }
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *stop = ba_fetch_exc();
        PyObject *value = PyObject_GetAttr(stop, st->s_value);
        Py_DECREF(stop);
        if (value == NULL) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        *result = value;
        return PYGEN_RETURN;
    }
    *result = NULL;
    return PYGEN_ERROR;
}

/* The node's context proxy (`self`): a new reference.  The node only keeps
 * a borrowed pointer, cleared by the proxy's dealloc, so that the two form
 * no reference cycle; `self` lives as long as user code holds it. */
static PyObject *
node_get_proxy(NodeObject *node)
{
    if (node->proxy != NULL) {
        return Py_NewRef(node->proxy);
    }
    GraphObject *g = node->graph;
    if (g->spare_ctx != NULL) {
        ContextObject *ctx = (ContextObject *)g->spare_ctx;
        g->spare_ctx = NULL; /* its reference is the caller's now */
        ctx->node = (NodeObject *)Py_NewRef(node);
        node->proxy = (PyObject *)ctx;
        if (ctx->spare != NULL) {
            SiblingObject *s = (SiblingObject *)ctx->spare;
            Py_SETREF(s->waiter, (NodeObject *)Py_NewRef(node));
        }
        return (PyObject *)ctx;
    }
    /* In the class form, an instance of the graph class's context type: a
     * Python subclass of Context whose only addition is a managed
     * __dict__, which the GC allocator initialises like its generic one. */
    ContextObject *proxy = PyObject_GC_New(
        ContextObject, g->bind_context ? g->bind_context : node->mst->ContextType);
    if (proxy == NULL) {
        return NULL;
    }
    BA_LIVE_ADD(node->mst, LIVE_CONTEXT, 1);
    proxy->node = (NodeObject *)Py_NewRef(node);
    proxy->signal = NULL;
    proxy->spare = NULL;
    proxy->weakreflist = NULL;
    PyObject_GC_Track(proxy);
    node->proxy = (PyObject *)proxy;
    if (g->bind_dict != NULL &&
        PyObject_GenericSetDict((PyObject *)proxy, g->bind_dict, NULL) < 0) {
        Py_DECREF(proxy); /* its dealloc resets node->proxy */
        return NULL;
    }
    return (PyObject *)proxy;
}

/* Call the task function with `proxy` (NULL: with no argument) and run
 * what it returned until its first suspension.  Returns the send result
 * like PyIter_Send (PYGEN_NEXT only when a coroutine was started and
 * yielded). */
static PySendResult
node_call_with(NodeObject *node, PyObject *proxy, PyObject **result)
{
    mod_state *st = node->graph->mst;
    PyObject *args[2] = {NULL, proxy};
    size_t nargs = proxy != NULL ? 1 : 0;
    PyObject *res = PyObject_Vectorcall(node->fn, args + 1,
                                        nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (res == NULL) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (PyCoro_CheckExact(res)) {
        node->coro = res;
    }
    else {
        PyTypeObject *tp = Py_TYPE(res);
        if (tp->tp_as_async != NULL && tp->tp_as_async->am_await != NULL) {
            PyObject *it = tp->tp_as_async->am_await(res);
            Py_DECREF(res);
            if (it == NULL) {
                *result = NULL;
                return PYGEN_ERROR;
            }
            if (PyCoro_CheckExact(it) || !PyIter_Check(it)) {
                /* The same checks, and errors, as Python's own await. */
                PyErr_Format(PyExc_TypeError,
                             PyCoro_CheckExact(it) ? "__await__() returned a coroutine"
                                                   : "__await__() returned non-iterator of type '%.100s'",
                             Py_TYPE(it)->tp_name);
                Py_DECREF(it);
                *result = NULL;
                return PYGEN_ERROR;
            }
            node->coro = it;
        }
        else if (PyGen_CheckExact(res)) {
            /* A generator-based coroutine (@types.coroutine) is awaitable;
             * a plain generator is a value. */
            PyObject *code = PyObject_GetAttr(res, st->s_gi_code);
            PyObject *flags = code ? PyObject_GetAttr(code, st->s_co_flags) : NULL;
            Py_XDECREF(code);
            if (flags == NULL) {
                Py_DECREF(res);
                *result = NULL;
                return PYGEN_ERROR;
            }
            long f = PyLong_AsLong(flags);
            Py_DECREF(flags);
            if (f & 0x0100 /* CO_ITERABLE_COROUTINE */) {
                node->coro = res;
            }
            else {
                *result = res;
                return PYGEN_RETURN;
            }
        }
        else {
            /* A synchronous task: its value is the result. */
            *result = res;
            return PYGEN_RETURN;
        }
    }
    return PyIter_Send(node->coro, Py_None, result);
}

/* The first step: call the task function (node_call_with).  Its `self` is
 * held until the first suspension, so that a task that ends in its first
 * step leaves it free for the next task (context_release). */
static PySendResult
node_call(NodeObject *node, PyObject **result)
{
    PyObject *proxy = NULL;
    if (node->wants_ctx && (proxy = node_get_proxy(node)) == NULL) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult sr = node_call_with(node, proxy, result);
    if (proxy != NULL) {
        context_release(node->graph, proxy);
    }
    return sr;
}


/* Run the node until it suspends or finishes.  Returns -1 only on an
 * internal error (an exception is then set); errors of the task itself are
 * its outcome. */
static int
node_step(NodeObject *node)
{
    GraphObject *g = node->graph;
    BA_ASSERT(g != NULL && node->state != NODE_DONE);
    BA_ASSERT(node->parked == NULL);
    mod_state *st = g->mst;
    PyObject *exc = node->resume_exc;
    node->resume_exc = NULL;
    PyObject *result = NULL;
    PySendResult sr;

    if (node->must_cancel || node->stop_pending) {
        node->must_cancel = 0;
        node->stop_pending = 0;
        if (exc == NULL || !PyErr_GivenExceptionMatches(exc, st->CancelledError)) {
            Py_XDECREF(exc);
            exc = node->cancel_msg
                ? PyObject_CallOneArg(st->CancelledError, node->cancel_msg)
                : PyObject_CallNoArgs(st->CancelledError);
            if (exc == NULL) {
                return -1;
            }
        }
    }

    if (node->state == NODE_PENDING && node->in_task) {
        /* Made outside the node's context: an eager task factory would
         * otherwise enter that context while it is entered. */
        PyObject *args;
        if (node->wants_ctx) {
            PyObject *proxy = node_get_proxy(node);
            args = proxy ? PyTuple_Pack(1, proxy) : NULL;
            Py_XDECREF(proxy);
        }
        else {
            args = PyTuple_New(0);
        }
        if (args == NULL) {
            Py_XDECREF(exc);
            return -1;
        }
        PyObject *cargs[5] = {g->loop, node->fn, args, node->name, node->vars};
        PyObject *coro = PyObject_Vectorcall(st->in_task_coroutine, cargs, 5, NULL);
        Py_DECREF(args);
        node->state = NODE_RUNNING;
        if (g->report != NULL) {
            node->t_start = graph_start_time(g);
        }
        if (coro == NULL) {
            Py_XDECREF(exc);
            return node_on_error(node, ba_fetch_exc());
        }
        node->coro = coro;
    }

    if (graph_swap_in(g, node) < 0) {
        Py_XDECREF(exc);
        return -1;
    }
    if (PyContext_Enter(node->vars) < 0) {
        Py_XDECREF(exc);
        return -1;
    }

    if (node->state == NODE_PENDING) {
        node->state = NODE_RUNNING;
        if (g->report != NULL) {
            node->t_start = graph_start_time(g);
        }
        if (exc != NULL) {
            /* Cancelled before its first step: never call the function. */
            result = NULL;
            ba_restore_exc(Py_NewRef(exc));
            sr = PYGEN_ERROR;
        }
        else {
            sr = node_call(node, &result);
        }
    }
    else if (exc != NULL) {
        sr = iter_throw(st, node->coro, exc, &result);
    }
    else {
        sr = PyIter_Send(node->coro, Py_None, &result);
    }
    Py_XDECREF(exc);

    PyObject *raised = (sr == PYGEN_ERROR) ? ba_fetch_exc() : NULL;
    if (PyContext_Exit(node->vars) < 0) {
        Py_XDECREF(raised);
        Py_XDECREF(result);
        return -1;
    }

    int rc;
    switch (sr) {
    case PYGEN_RETURN:
        rc = node_on_return(node, result);
        Py_DECREF(result);
        return rc;
    case PYGEN_ERROR:
        if (raised == NULL) {
            PyErr_SetString(PyExc_SystemError, "task step failed without an exception");
            raised = ba_fetch_exc();
        }
        return node_on_error(node, raised);
    default:
        if (!g->nodes_tracked) {
            /* Suspended inside the caller's step: its coroutine and `self`
             * stay alive until the caller suspends too.  (Those of a task
             * that ends in its step die at once: not worth the calls.  The
             * class form's `self` has the graph object's attributes: left
             * to the collector.) */
            if (PyCoro_CheckExact(node->coro)) {
                untrack_while_running(g, node->coro);
            }
            if (node->proxy != NULL && g->bind_context == NULL) {
                untrack_while_running(g, node->proxy);
            }
        }
        rc = node_handle_yield(node, result);
        Py_DECREF(result);
        return rc;
    }
}

/* Resume the node on the loop's next turn, with `exc` (stolen, may be NULL)
 * thrown in.  All nodes that yield to the loop during one batch are resumed
 * by a single loop callback (graph_soon_cb), not one callback each. */

static int
node_resume_soon(NodeObject *node, PyObject *exc)
{
    Py_XSETREF(node->resume_exc, exc);
    return graph_push_soon(node->graph, node);
}

/* The old way, one loop callback for one node: only when memory for the
 * batch ran out. */
static void
node_resume_soon_alone(NodeObject *node)
{
    PyObject *wakeup = node_get_wakeup(node);
    if (wakeup == NULL || call_soon(node->graph, wakeup, Py_None, NULL) < 0) {
        PyErr_WriteUnraisable((PyObject *)node);
    }
}

/* Whether the future `fut` belongs to `loop`: 1 or 0, -1 with an error.
 * Read as asyncio reads it (futures._get_loop): fut.get_loop(), else
 * fut._loop; a future-like object with neither is taken as the loop's. */
static int
future_on_loop(mod_state *st, PyObject *fut, PyObject *loop)
{
    PyObject *own = PyObject_CallMethodNoArgs(fut, st->s_get_loop);
    if (own == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        own = PyObject_GetAttr(fut, st->s_loop);
        if (own == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return -1;
            }
            PyErr_Clear();
            return 1;
        }
    }
    int same = own == loop;
    Py_DECREF(own);
    return same;
}

/* Wait for `fut`, a future that asked the task to block on it, as
 * Task.__step does: check its loop, take the blocking flag back, and ask
 * for the node's wakeup when it is done.  0 or -1 (then nothing waits). */
static int
node_wait_for_future(NodeObject *node, PyObject *fut)
{
    GraphObject *g = node->graph;
    mod_state *st = g->mst;
    /* As asyncio.Task: a future of another loop would wake the node on
     * that loop's thread. */
    int same = future_on_loop(st, fut, g->loop);
    if (same < 0) {
        return -1;
    }
    if (!same) {
        PyErr_Format(PyExc_RuntimeError, "Task %R got Future %R attached to a different loop",
                     (PyObject *)node, fut);
        return -1;
    }
    if (PyObject_SetAttr(fut, st->s_blocking, Py_False) < 0) {
        return -1;
    }
    PyObject *wakeup = node_get_wakeup(node);
    if (wakeup == NULL) {
        return -1;
    }
    /* The wakeup runs in the graph's callback context, never in the node's
     * own: stepping the node enters that one. */
    if (g->cb_context == NULL) {
        g->cb_context = PyContext_New();
        if (g->cb_context == NULL) {
            return -1;
        }
    }
    PyObject *args[3] = {fut, wakeup, g->cb_context};
    PyObject *r = PyObject_VectorcallMethod(st->s_add_done_callback, args, 2, st->kw_context);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    Py_XSETREF(node->fut_waiter, Py_NewRef(fut));
    return 0;
}

static int
node_handle_yield(NodeObject *node, PyObject *yielded)
{
    GraphObject *g = node->graph;
    mod_state *st = g->mst;

    if (Py_IS_TYPE(yielded, st->SiblingType)) {
        SiblingObject *s = (SiblingObject *)yielded;
        if (s->state == SIB_BLOCKED && s->waiter == node && s->callbacks == NULL) {
            /* `await self.user` on a running sibling: park, no loop work. */
            s->blocking = 0;
            s->parked = 1;
            Py_XSETREF(node->parked, Py_NewRef(yielded));
            if (node->must_cancel) {
                /* Cancelled while it ran: stop waiting at once. */
                sibling_unregister(s);
                s->state = SIB_CANCELLED;
                s->parked = 0;
                Py_CLEAR(node->parked);
                graph_enqueue(g, node);
            }
            return 0;
        }
    }

    if (yielded == Py_None) {
        /* A bare yield: give the loop one turn. */
        return node_resume_soon(node, NULL);
    }

    PyObject *blocking = PyObject_GetAttr(yielded, st->s_blocking);
    if (blocking == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            goto task_fails;
        }
        PyErr_Clear();
    }
    if (blocking != NULL && blocking != Py_None) {
        int is_blocking = PyObject_IsTrue(blocking);
        Py_DECREF(blocking);
        if (is_blocking < 0) {
            goto task_fails;
        }
        if (is_blocking) {
            if (node_wait_for_future(node, yielded) < 0) {
                goto task_fails;
            }
            if (node->must_cancel) {
                PyObject *cr = node->cancel_msg
                    ? PyObject_CallMethodOneArg(yielded, st->s_cancel, node->cancel_msg)
                    : PyObject_CallMethodNoArgs(yielded, st->s_cancel);
                int ok = cr == NULL ? -1 : PyObject_IsTrue(cr);
                Py_XDECREF(cr);
                if (ok < 0) {
                    /* Its done callback, when it comes, finds another
                     * fut_waiter and is ignored (node_wakeup_impl). */
                    Py_CLEAR(node->fut_waiter);
                    goto task_fails;
                }
                if (ok > 0) {
                    node->must_cancel = 0;
                }
            }
            return 0;
        }
        PyObject *err = PyObject_CallFunction(
            PyExc_RuntimeError, "s", "yield was used instead of yield from in task");
        if (err == NULL) {
            return -1;
        }
        return node_resume_soon(node, err);
    }
    Py_XDECREF(blocking);
    PyObject *err = PyUnicode_FromFormat("Task got bad yield: %R", yielded);
    if (err == NULL) {
        goto task_fails;
    }
    PyObject *e = PyObject_CallOneArg(PyExc_RuntimeError, err);
    Py_DECREF(err);
    if (e == NULL) {
        goto task_fails;
    }
    return node_resume_soon(node, e);

task_fails:
    /* The yielded object broke the future protocol: its
     * `_asyncio_future_blocking`, get_loop(), add_done_callback() or
     * cancel() raised.  asyncio.Task hands such an error to the loop's
     * exception handler and never finishes; here the task fails with it,
     * thrown in at its await as a bad yield is, and the call goes on by its
     * usual rules. */
    return node_resume_soon(node, ba_fetch_exc());
}

/* Task.cancel() semantics.  Returns 1 if a cancellation was requested, 0 if
 * the node is done, -1 on error.  Never steps the node: a parked node goes
 * to the ready queue, and the caller drains it (or the engine schedules a
 * drain when nobody will). */
static int
node_cancel(NodeObject *node, PyObject *msg)
{
    GraphObject *g = node->graph;
    mod_state *st = node->mst;
    if (node->state == NODE_DONE || g == NULL) {
        return 0;
    }
    node->num_cancels_requested++;
    Py_XSETREF(node->cancel_msg, Py_XNewRef(msg));
    if (node->fut_waiter != NULL) {
        PyObject *fut = Py_NewRef(node->fut_waiter);
        PyObject *r = msg ? PyObject_CallMethodOneArg(fut, st->s_cancel, msg)
                          : PyObject_CallMethodNoArgs(fut, st->s_cancel);
        Py_DECREF(fut);
        if (r == NULL) {
            return -1;
        }
        int ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (ok < 0) {
            return -1;
        }
        if (ok) {
            /* Its done callback wakes the node with CancelledError. */
            return 1;
        }
    }
    node->must_cancel = 1;
    if (node->parked != NULL) {
        SiblingObject *s = (SiblingObject *)node->parked;
        sibling_unregister(s);
        s->state = SIB_CANCELLED;
        s->parked = 0;
        Py_CLEAR(node->parked);
        graph_enqueue(g, node);
    }
    return 1;
}

/* -- node as a Task (what asyncio sees as the current task) ----------------- */

static PyObject *
node_wakeup_impl(PyObject *self, PyObject *fut)
{
    NodeObject *node = (NodeObject *)self;
    GraphObject *g = node->graph;
    mod_state *st = node->mst;
    if (g == NULL || node->state == NODE_DONE) {
        Py_RETURN_NONE; /* finished, or its call was abandoned */
    }
    if (fut != Py_None) {
        if (node->fut_waiter != fut) {
            Py_RETURN_NONE; /* a wait the node gave up (node_handle_yield) */
        }
        Py_CLEAR(node->fut_waiter);
        /* As Task.__wakeup: throw the future's exception in, else send. */
        PyObject *r = PyObject_CallMethodNoArgs(fut, st->s_result);
        if (r == NULL) {
            Py_XSETREF(node->resume_exc, ba_fetch_exc());
        }
        else {
            Py_DECREF(r);
        }
    }
    graph_enqueue(g, node);
    if (graph_drain(g) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef node_wakeup_def = {
    "_wakeup", (PyCFunction)node_wakeup_impl, METH_O, NULL,
};

static PyObject *
node_get_wakeup(NodeObject *node)
{
    if (node->wakeup == NULL) {
        node->wakeup = PyCFunction_New(&node_wakeup_def, (PyObject *)node);
    }
    return node->wakeup;
}

static PyObject *
node_get_name(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->name);
}

static PyObject *
node_cancel_meth(NodeObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *msg;
    if (parse_optional(args, nargs, kwnames, 0, "msg", 0, &msg,
                       "cancel() takes one optional argument, msg") < 0) {
        return NULL;
    }
    if (msg == Py_None) {
        msg = NULL;
    }
    int r = node_cancel(self, msg);
    if (r < 0) {
        return NULL;
    }
    if (r > 0 && self->graph != NULL && self->graph->ready_len > 0 &&
        graph_schedule_drain(self->graph) < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
node_uncancel(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->num_cancels_requested > 0) {
        self->num_cancels_requested--;
        if (self->num_cancels_requested == 0) {
            self->must_cancel = 0;
        }
    }
    return PyLong_FromLong(self->num_cancels_requested);
}

static PyObject *
node_cancelling(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->num_cancels_requested);
}

static PyObject *
node_done(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->state == NODE_DONE);
}

static PyObject *
node_cancelled(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->state == NODE_DONE &&
                           (self->status == STATUS_CANCELLED || self->status == STATUS_ENDED));
}

static PyObject *
node_raise_cancelled(NodeObject *self)
{
    mod_state *st = self->mst;
    PyObject *e = PyUnicode_FromFormat("task %R was cancelled", self->name);
    if (e != NULL) {
        PyErr_SetObject(st->CancelledError, e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *
node_result(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    mod_state *st = self->mst;
    if (self->state != NODE_DONE) {
        PyErr_SetString(st->InvalidStateError, "Result is not set.");
        return NULL;
    }
    if (self->status == STATUS_FULFILLED) {
        return Py_NewRef(self->result ? self->result : Py_None);
    }
    if (self->status == STATUS_REJECTED) {
        ba_raise(self->error);
        return NULL;
    }
    return node_raise_cancelled(self);
}

static PyObject *
node_exception(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    mod_state *st = self->mst;
    if (self->state != NODE_DONE) {
        PyErr_SetString(st->InvalidStateError, "Exception is not set.");
        return NULL;
    }
    if (self->status == STATUS_FULFILLED) {
        Py_RETURN_NONE;
    }
    if (self->status == STATUS_REJECTED) {
        return Py_NewRef(self->error);
    }
    return node_raise_cancelled(self);
}

static PyObject *
node_add_done_callback(NodeObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    PyObject *context;
    if (parse_optional(args, nargs, kwnames, 1, "context", 1, &context,
                       "add_done_callback() takes a callback and an optional context=") < 0) {
        return NULL;
    }
    context = (context != NULL && context != Py_None) ? Py_NewRef(context)
                                                      : PyContext_CopyCurrent();
    if (context == NULL) {
        return NULL;
    }
    if (self->state == NODE_DONE) {
        int r = call_soon_in(self->graph ? self->graph->loop : NULL, self->mst,
                             args[0], (PyObject *)self, context);
        Py_DECREF(context);
        if (r < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (self->graph == NULL) {
        Py_DECREF(context);
        return context_gone(self);
    }
    PyObject *pair = PyTuple_Pack(2, args[0], context);
    Py_DECREF(context);
    if (pair == NULL) {
        return NULL;
    }
    if (self->callbacks == NULL) {
        self->callbacks = PyList_New(0);
        if (self->callbacks == NULL) {
            Py_DECREF(pair);
            return NULL;
        }
    }
    int r = PyList_Append(self->callbacks, pair);
    Py_DECREF(pair);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Remove every (fn, context) pair of `list` whose fn == `fn`; return the
 * count removed, or -1. */
static Py_ssize_t
remove_callbacks(PyObject *list, PyObject *fn)
{
    if (list == NULL) {
        return 0;
    }
    Py_ssize_t removed = 0;
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= 0; i--) {
        PyObject *item = PyTuple_GET_ITEM(PyList_GET_ITEM(list, i), 0);
        Py_INCREF(item);
        int eq = PyObject_RichCompareBool(item, fn, Py_EQ);
        Py_DECREF(item);
        if (eq < 0) {
            return -1;
        }
        if (eq) {
            if (i >= PyList_GET_SIZE(list) ||
                PySequence_DelItem(list, i) < 0) {
                return -1;
            }
            removed++;
        }
    }
    return removed;
}

static PyObject *
node_remove_done_callback(NodeObject *self, PyObject *fn)
{
    Py_ssize_t n = remove_callbacks(self->callbacks, fn);
    if (n < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *
node_get_coro(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->coro ? self->coro : Py_None);
}

static PyObject *
node_get_context(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->vars);
}

static PyObject *
node_get_loop(NodeObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->graph && self->graph->loop ? self->graph->loop : Py_None);
}

static PyObject *
node_get_stack(NodeObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    (void)self; (void)args; (void)nargs; (void)kwnames;
    return PyList_New(0);
}

static PyObject *
node_repr(NodeObject *self)
{
    static const char *const states[] = {"pending", "running", "done"};
    return PyUnicode_FromFormat("<betterall task %R %s>", self->name, states[self->state]);
}

static PyMethodDef node_methods[] = {
    {"get_name", (PyCFunction)node_get_name, METH_NOARGS, "The task's name."},
    {"cancel", (PyCFunction)(void (*)(void))node_cancel_meth,
     METH_FASTCALL | METH_KEYWORDS, "Request cancellation, as Task.cancel()."},
    {"uncancel", (PyCFunction)node_uncancel, METH_NOARGS,
     "Decrement the count of cancellation requests, as Task.uncancel()."},
    {"cancelling", (PyCFunction)node_cancelling, METH_NOARGS,
     "The count of pending cancellation requests."},
    {"done", (PyCFunction)node_done, METH_NOARGS, "True once the task finished."},
    {"cancelled", (PyCFunction)node_cancelled, METH_NOARGS,
     "True if the task finished cancelled."},
    {"result", (PyCFunction)node_result, METH_NOARGS, "The task's result."},
    {"exception", (PyCFunction)node_exception, METH_NOARGS, "The task's exception."},
    {"add_done_callback", (PyCFunction)(void (*)(void))node_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, "Call fn(task) once the task is done."},
    {"remove_done_callback", (PyCFunction)node_remove_done_callback, METH_O,
     "Remove a done callback."},
    {"get_coro", (PyCFunction)node_get_coro, METH_NOARGS,
     "The coroutine the task runs (None for a synchronous task)."},
    {"get_context", (PyCFunction)node_get_context, METH_NOARGS,
     "The task's contextvars.Context."},
    {"get_loop", (PyCFunction)node_get_loop, METH_NOARGS, "The task's event loop."},
    {"get_stack", (PyCFunction)(void (*)(void))node_get_stack,
     METH_FASTCALL | METH_KEYWORDS, "An empty list (frames are not tracked)."},
    {NULL, NULL, 0, NULL},
};

static int
node_traverse(NodeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->name);
    Py_VISIT(self->fn);
    Py_VISIT(self->coro);
    Py_VISIT(self->vars);
    Py_VISIT(self->result);
    Py_VISIT(self->error);
    Py_VISIT(self->fut_waiter);
    Py_VISIT(self->parked);
    Py_VISIT(self->waiters);
    Py_VISIT(self->blocked_on);
    Py_VISIT(self->callbacks);
    Py_VISIT(self->wakeup);
    Py_VISIT(self->cancel_msg);
    Py_VISIT(self->resume_exc);
    Py_VISIT(self->deps);
    Py_VISIT(self->waits);
    return 0;
}

static int
node_clear(NodeObject *self)
{
    Py_CLEAR(self->name);
    Py_CLEAR(self->fn);
    track_coro_again(self->coro);
    Py_CLEAR(self->coro);
    Py_CLEAR(self->vars);
    Py_CLEAR(self->result);
    Py_CLEAR(self->error);
    Py_CLEAR(self->fut_waiter);
    Py_CLEAR(self->parked);
    Py_CLEAR(self->waiters);
    Py_CLEAR(self->blocked_on);
    Py_CLEAR(self->callbacks);
    self->proxy = NULL; /* borrowed */
    Py_CLEAR(self->wakeup);
    Py_CLEAR(self->cancel_msg);
    Py_CLEAR(self->resume_exc);
    Py_CLEAR(self->deps);
    Py_CLEAR(self->waits);
    return 0;
}

static void
node_dealloc(NodeObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    assert(self->graph == NULL);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)node_clear(self);
    ba_live_dealloc(tp, LIVE_NODE);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* asyncio.Task's private `_must_cancel` and `_fut_waiter`, read-only: anyio's
 * cancel scopes read them on the current task. */
static PyObject *
node_get_must_cancel(PyObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((NodeObject *)self)->must_cancel);
}

static PyObject *
node_get_fut_waiter(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *fut = ((NodeObject *)self)->fut_waiter;
    return Py_NewRef(fut ? fut : Py_None);
}

/* `__class__` answers asyncio.Task, so that isinstance(task, asyncio.Task)
 * and isinstance(task, asyncio.Future) hold for the current task inside a
 * graph task, as on the pure-Python engine: asyncio's call-graph
 * introspection (3.14's capture_call_graph) and other Python code that
 * checks for a Task accept the node.  type(task) stays the engine's type,
 * and C code that checks the real type (asyncio's own) is not fooled. */
static PyObject *
node_get_class(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *task_type = ((NodeObject *)self)->mst->Task;
    /* NULL once the module state is cleared (interpreter shutdown). */
    return Py_NewRef(task_type != NULL ? task_type : (PyObject *)Py_TYPE(self));
}

/* asyncio.Future's `_asyncio_awaited_by` (3.14's call-graph introspection):
 * the tasks waiting for this one while it runs, that is the siblings parked
 * on it (`await self.name`) and the call's caller, which waits for every
 * task; None when there are none, as for a Future. */
static PyObject *
node_get_awaited_by(PyObject *self, void *Py_UNUSED(closure))
{
    NodeObject *node = (NodeObject *)self;
    GraphObject *g = node->graph;
    if (g == NULL || node->state == NODE_DONE) {
        Py_RETURN_NONE;
    }
    PyObject *set = PyFrozenSet_New(NULL);
    if (set == NULL) {
        return NULL;
    }
    Py_ssize_t n = refs_len(node->waiters);
    for (Py_ssize_t i = 0; i < n; i++) {
        SiblingObject *sib = (SiblingObject *)refs_item(node->waiters, i);
        if (sib->parked && sib->waiter != NULL &&
            PySet_Add(set, (PyObject *)sib->waiter) < 0) {
            Py_DECREF(set);
            return NULL;
        }
    }
    if (g->caller != NULL && g->caller != Py_None && PySet_Add(set, g->caller) < 0) {
        Py_DECREF(set);
        return NULL;
    }
    if (PySet_GET_SIZE(set) == 0) {
        Py_DECREF(set);
        Py_RETURN_NONE;
    }
    return set;
}

static PyGetSetDef node_getset[] = {
    {"__class__", node_get_class, NULL, NULL, NULL},
    {"_asyncio_awaited_by", node_get_awaited_by, NULL, NULL, NULL},
    {"_must_cancel", node_get_must_cancel, NULL, NULL, NULL},
    {"_fut_waiter", node_get_fut_waiter, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef node_members[] = {
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(NodeObject, weakreflist), Py_READONLY},
    {NULL},
};

static PyType_Slot node_slots[] = {
    {Py_tp_doc, "A betterall graph task, as asyncio sees it while it runs."},
    {Py_tp_dealloc, node_dealloc},
    {Py_tp_traverse, node_traverse},
    {Py_tp_clear, node_clear},
    {Py_tp_methods, node_methods},
    {Py_tp_members, node_members},
    {Py_tp_getset, node_getset},
    {Py_tp_repr, node_repr},
    {0, NULL},
};

static PyType_Spec node_spec = {
    .name = "betterall._cengine.Node",
    .basicsize = sizeof(NodeObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = node_slots,
};

#endif /* BETTERALL_NODE_H */
